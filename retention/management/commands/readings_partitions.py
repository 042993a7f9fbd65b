from django.core.management.base import BaseCommand, CommandError

from core.progress import Progress
from retention.partitions import partition_drop_expired
from telemetry import partitions


class Command(BaseCommand):
    help = (
        "PostgreSQL: create the readings partitions for the days ahead (and list them); with "
        "--drop-expired, also drop whole partitions whose rows are all past their tenants' windows "
        "(what the daily maintenance job does); with --recount, count the readings per tenant and day "
        "again (after a bulk load with triggers off). On SQLite there is one table and nothing to do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--drop-expired", action="store_true", help="Drop expired partitions (maintenance).")
        parser.add_argument("--list", action="store_true", help="List the partitions.")
        parser.add_argument(
            "--recount",
            action="store_true",
            help="Count the readings per tenant and day again (after a bulk load with triggers off).",
        )

    def handle(self, *args, drop_expired: bool, list: bool, recount: bool, **options):
        if not partitions.is_partitioned():
            raise CommandError("The readings table is not partitioned (SQLite keeps one table).")
        created = partitions.partitions_ensure()
        self.stdout.write(f"created {len(created)} partition(s){': ' + ', '.join(created) if created else ''}")
        summary = f"Partitions: {len(created)} created"
        if recount:
            counted = partitions.reading_day_counts_rebuild()
            self.stdout.write(f"recounted {counted} readings per tenant and day")
            summary += f", {counted} readings recounted"
        if drop_expired:
            looked_at = sum(1 for p in partitions.partition_list() if p.start is not None)
            with Progress(stderr=self.stderr, label="Partitions", total=looked_at, unit="partitions") as progress:

                def done(partition, dropped):
                    progress.note(partition.name)
                    progress.advance()

                dropped = partition_drop_expired(on_partition_done=done)
            for each in dropped:
                self.stdout.write(f"dropped {each.name} ({sum(each.rows_by_tenant.values())} readings)")
            readings = sum(sum(each.rows_by_tenant.values()) for each in dropped)
            summary += (
                f", {len(dropped)} dropped ({readings} readings), {progress.count - len(dropped)} kept, "
                f"in {progress.seconds:.1f} s"
            )
        if list:
            for partition in partitions.partition_list():
                span = (
                    "DEFAULT"
                    if partition.start is None
                    else f"{partition.start.isoformat()} .. {partition.end.isoformat()}"
                )
                self.stdout.write(f"{partition.name}  {span}")
        self.stdout.write(f"{summary}.")

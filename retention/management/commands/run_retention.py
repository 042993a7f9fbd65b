from django.core.management.base import BaseCommand, CommandError

from core.caller import Caller
from core.progress import Progress
from retention.models import RetentionRun
from retention.selectors import retention_expired_counts
from retention.services import RetentionError, retention_cutoffs, retention_run_execute, retention_run_request
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_id_or_name


class Command(BaseCommand):
    help = (
        "Delete sensor readings and heartbeats older than each tenant's retention window, "
        "here and now (not through a worker), and print per tenant the cutoff and rows deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="only this tenant (id or name); default: every tenant")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, tenant: str | None, dry_run: bool, **options):
        if tenant is not None:
            try:
                tenants = [tenant_get_by_id_or_name(tenant)]
            except Tenant.DoesNotExist as exc:
                raise CommandError(str(exc)) from None
        else:
            tenants = list(Tenant.objects.order_by("name"))
        failures = 0
        self.deleted = {"readings": 0, "heartbeats": 0}
        with Progress(stderr=self.stderr, label="Retention", total=len(tenants), unit="tenants") as progress:
            for each in tenants:
                progress.note(each.name)
                ok = self._dry_run(each) if dry_run else self._run(each)
                failures += not ok
                progress.advance()
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"Retention: {len(tenants)} tenant(s), {verb} {self.deleted['readings']} readings and "
            f"{self.deleted['heartbeats']} heartbeats, {failures} failed, in {progress.seconds:.1f} s."
        )
        if failures:
            raise CommandError(f"Retention failed for {failures} of {len(tenants)} tenant(s).")

    def _label(self, tenant: Tenant) -> str:
        return f"{tenant.name} ({tenant.pk})"

    def _dry_run(self, tenant: Tenant) -> bool:
        try:
            cutoffs, windows = retention_cutoffs(tenant=tenant)
        except RetentionError as exc:
            self.stdout.write(f"{self._label(tenant)}: failed: {exc}")
            return False
        cutoff, days = cutoffs["readings"], windows["readings"]
        counts = retention_expired_counts(tenant_id=tenant.pk, cutoffs=cutoffs)["would_delete"]
        self.deleted["readings"] += counts["readings"]
        self.deleted["heartbeats"] += counts["heartbeats"]
        self.stdout.write(
            f"{self._label(tenant)}: cutoff {cutoff.isoformat()} ({days} days), "
            f"would delete {counts['readings']} readings, {counts['heartbeats']} heartbeats (dry run)"
        )
        return True

    def _run(self, tenant: Tenant) -> bool:
        run, created = retention_run_request(
            by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.COMMAND
        )
        if not created:
            # The database allows one active run per tenant; that one does the job.
            self.stdout.write(f"{self._label(tenant)}: skipped, run {run.pk} is already {run.status}")
            return True
        retention_run_execute(run_id=run.pk)
        run.refresh_from_db()
        if run.status != RetentionRun.Status.SUCCEEDED:
            self.stdout.write(f"{self._label(tenant)}: run {run.pk} {run.status}: {run.error}")
            return False
        self.deleted["readings"] += run.readings_deleted
        self.deleted["heartbeats"] += run.heartbeats_deleted
        self.stdout.write(
            f"{self._label(tenant)}: cutoff {run.cutoff.isoformat()} ({run.retention_days} days), "
            f"deleted {run.readings_deleted} readings, {run.heartbeats_deleted} heartbeats"
        )
        return True

"""Retention at scale: whole-partition drops vs one DELETE, and year-long aggregates from rollups vs raw.

10,000,000 readings of one tenant (100 sensors) spread evenly over the last 365
days, loaded server-side by generate_series into the partitioned readings table
(`READINGS_PARTITION_DAYS`-wide partitions, 28 by default), then rolled up (the beat job's work,
timed: rows/s). The tenant keeps 90 days of readings (the professional tier's
window: an enterprise tenant the day after its downgrade), so the oldest 275
days are expired, most of them in whole partitions.

- Drop: the maintenance job (`partition_drop_expired`: rollups check, per
  partition the locks, the checks, detach + drop, one maintenance run recorded)
  against one `DELETE ... WHERE tenant_id = %s AND ts < <end of the last expired
  partition>` of exactly the same rows, the fastest single statement (run in a
  transaction that is rolled back, so that the same rows are there for the drop).
- Aggregate: one sensor, 365 days at 1d: from the rollups (what the endpoint does
  when the range is past the raw cutoff) against the same aggregate over the raw rows.
- Figures for docs/notes/scale.md: rows per partition, partition size, time per drop and
  where it goes (each statement timed), the filesystem the partitions' files are on.

The drop runs on cold partitions (a CHECKPOINT, then the kernel's page cache emptied,
when run as root), as expired partitions are in service; the DELETE baseline runs warm,
its fastest. BENCH_TABLESPACE_DIR=<an empty directory the server's user owns> puts the
partitions there instead of the data directory, to measure a drop on other storage (a
drop's commit frees the partition's files at that filesystem's speed).
"""

import os
import time
from datetime import UTC, timedelta

from bench.bench_retention import _bulk_load, _execute, _fetchall
from bench.harness import Context, Measurement

TITLE = "Retention at scale: partition drops vs DELETE, 1d aggregates from rollups vs raw"

SENSORS = 100
DAYS = 365
POLICY_DAYS = 90  # the professional tier's readings window


def _best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _setup():
    from telemetry.models import Machine, Sensor
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Partition bench", tier="professional")
    machine = Machine.objects.create(tenant=tenant, external_id="press-1", name="Press 1")
    sensors = Sensor.objects.bulk_create(
        Sensor(machine=machine, key=f"s{i}", kind="temperature") for i in range(SENSORS)
    )
    return tenant, [s.pk for s in sensors]


def _fresh_partitions(now) -> None:
    """No partition but the default, then one per day over the data's year and the days ahead."""
    from telemetry import partitions

    for partition in partitions.partition_list():
        if partition.start is not None:
            _execute(f'DROP TABLE "{partition.name}"')
    partitions.partitions_ensure(since=now - timedelta(days=DAYS + 1))
    # Autovacuum would wake up on every freshly loaded partition and the drops' ACCESS
    # EXCLUSIVE locks would wait for it to be cancelled (deadlock_timeout, 1 s): in service,
    # old partitions are not written and autovacuum leaves them alone. The load vacuums itself.
    for partition in partitions.partition_list():
        _execute(f'ALTER TABLE "{partition.name}" SET (autovacuum_enabled = false)')


def _load(*, tenant_id, sensor_ids, total: int, now) -> None:
    from telemetry import partitions
    from telemetry.models import SensorReading

    table = SensorReading._meta.db_table
    start = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / (total // SENSORS)
    with _bulk_load(table):
        _execute(
            f'INSERT INTO "{table}" (tenant_id, sensor_id, ts, value) '
            "SELECT %s, (%s::bigint[])[1 + g %% %s], %s + (g / %s) * %s, random() * 100 "
            "FROM generate_series(0, %s - 1) AS g",
            [tenant_id, sensor_ids, SENSORS, start, SENSORS, step, total],
        )
    # The load ran with triggers off: count its rows per tenant and day once, as after any such load.
    partitions.reading_day_counts_rebuild()


def _use_tablespace() -> str | None:
    """BENCH_TABLESPACE_DIR (a directory the server's user owns): the partitions' files go there.

    To measure on storage other than the data directory's: a drop's commit frees the
    partition's files, at the speed of that filesystem (docs/notes/scale.md).
    """
    location = os.environ.get("BENCH_TABLESPACE_DIR")
    if not location:
        return None
    _execute("DROP TABLESPACE IF EXISTS haltless_bench")
    quoted = location.replace("'", "''")
    _execute(f"CREATE TABLESPACE haltless_bench LOCATION '{quoted}'")
    _execute("SET default_tablespace = haltless_bench")
    return location


def _storage_of(path: str) -> str:
    """The filesystem and mount options `path` is on (this machine's mounts; the server runs here)."""
    try:
        with open("/proc/mounts") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return "unknown"
    best = max((e for e in entries if path.startswith(e[1].rstrip("/") + "/") or path == e[1]), key=lambda e: len(e[1]))
    return f"{best[2]} on {best[1]} ({best[3]})"


def _evict_caches() -> bool:
    """Write every dirty page out and empty the kernel's page cache (root only): False if it could not."""
    _execute("CHECKPOINT")
    try:
        with open("/proc/sys/vm/drop_caches", "w") as caches:
            caches.write("1\n")
    except OSError:
        return False
    return True


def run(ctx: Context) -> list[Measurement]:
    from django.db import connection, transaction
    from django.utils import timezone

    from retention import partitions as partition_drops
    from retention.models import RetentionRun
    from telemetry import partitions, selectors
    from telemetry.models import SensorReading
    from telemetry.rollups import rollups_build

    if not partitions.is_partitioned():
        raise RuntimeError("The readings table is not partitioned (this benchmark needs PostgreSQL).")
    ctx.truncate_all()
    table = SensorReading._meta.db_table
    total = ctx.scale(10_000_000, 200_000)
    now = timezone.now()
    tenant, sensor_ids = _setup()
    tablespace = _use_tablespace()
    _fresh_partitions(now)

    started = time.perf_counter()
    _load(tenant_id=tenant.pk, sensor_ids=sensor_ids, total=total, now=now)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rollups_build()
    rollup_seconds = time.perf_counter() - started

    # --- 365 days at 1d, one sensor: rollups vs raw ---------------------------------
    sensor_id = sensor_ids[0]
    since, until = now - timedelta(days=DAYS), now
    raw = selectors.reading_aggregates(
        sensor_id=sensor_id, kind="temperature", bucket_seconds=86400, since=since, until=until
    )
    rolled = selectors.reading_aggregates_with_rollups(
        tenant_id=tenant.pk,
        sensor_id=sensor_id,
        kind="temperature",
        bucket_seconds=86400,
        since=since,
        until=until,
        raw_cutoff=until,
    )
    assert sum(b.count for b in raw) == sum(b.count for b in rolled) == total // SENSORS
    raw_seconds = _best_of(
        3,
        lambda: selectors.reading_aggregates(
            sensor_id=sensor_id, kind="temperature", bucket_seconds=86400, since=since, until=until
        ),
    )
    rollup_read_seconds = _best_of(
        5,
        lambda: selectors.reading_aggregates_with_rollups(
            tenant_id=tenant.pk,
            sensor_id=sensor_id,
            kind="temperature",
            bucket_seconds=86400,
            since=since,
            until=until,
            raw_cutoff=until,
        ),
    )

    # --- Expired whole partitions: one DELETE (rolled back) vs the maintenance drop ----
    cutoff = now - timedelta(days=POLICY_DAYS)
    expired = [p for p in partitions.partition_list() if p.end is not None and p.end <= cutoff]
    boundary = max(p.end for p in expired)
    (in_expired,) = _fetchall(f'SELECT count(*) FROM "{table}" WHERE ts < %s', [boundary])[0]
    sizes = _fetchall(
        "SELECT avg(pg_total_relation_size(c.oid)), avg(c.reltuples) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass AND c.relname <> %s",
        [table, partitions.default_partition()],
    )[0]
    # The baseline is the fastest DELETE of exactly those rows we could find, each rolled back
    # (so that the same rows are there for the drop) and followed by a VACUUM (the rolled-back
    # DELETE left an aborted xmax on each row; a committed one would leave dead rows): the
    # first VACUUM is timed as the debt a DELETE leaves.
    deletes = {
        "one DELETE on the parent by tenant and ts": [
            (f'DELETE FROM "{table}" WHERE tenant_id = %s AND ts < %s', [tenant.pk, boundary])
        ],
        "a bare DELETE of each expired partition": [(f'DELETE FROM "{p.name}"', None) for p in expired],
    }
    delete_times = {}
    vacuum_seconds = None
    for label, statements in deletes.items():
        started = time.perf_counter()
        with transaction.atomic():
            deleted = sum(_execute(sql, params) for sql, params in statements)
            delete_times[label] = time.perf_counter() - started
            transaction.set_rollback(True)
        assert deleted == in_expired, (label, deleted, in_expired)
        started = time.perf_counter()
        _execute(f'VACUUM "{table}"')
        vacuum_seconds = vacuum_seconds or time.perf_counter() - started
    fastest = min(delete_times, key=delete_times.get)
    delete_seconds = delete_times[fastest]
    # In service an expired partition is months old and unread: its pages are on disk, not in
    # memory. The same fastest DELETE, from there (informational: the baseline stays the warm one).
    cold = _evict_caches()
    if cold:
        started = time.perf_counter()
        with transaction.atomic():
            sum(_execute(sql, params) for sql, params in deletes[fastest])
            cold_delete_seconds = time.perf_counter() - started
            transaction.set_rollback(True)
        _execute(f'VACUUM "{table}"')
        _evict_caches()

    # The drop, with the time of each of its statements (for the notes: where a drop's time goes).
    statement_seconds: dict[str, list[float]] = {}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statement_seconds.setdefault(" ".join(sql.split()[:4]), []).append(time.perf_counter() - started)

    with connection.execute_wrapper(timed):
        started = time.perf_counter()
        dropped = partition_drops.partition_drop_expired(now=now)
        drop_seconds = time.perf_counter() - started
    dropped_rows = sum(sum(d.rows_by_tenant.values()) for d in dropped)
    assert [d.name for d in dropped] == [p.name for p in expired], [d.name for d in dropped]
    assert dropped_rows == in_expired, (dropped_rows, in_expired)
    with_rows = [d for d in dropped if d.rows_by_tenant]
    assert RetentionRun.objects.filter(tenant=tenant, trigger="maintenance").count() == len(with_rows)

    ctx.notes.append(
        f"retention at scale: {total:,} readings of one tenant over {DAYS} days in "
        f"{partitions.width_days()}-day partitions "
        f"(about {sizes[1]:,.0f} rows and {sizes[0] / 2**20:,.1f} MiB each with indexes); loaded in "
        f"{load_seconds:.0f} s; rollups built in {rollup_seconds:.1f} s ({total / rollup_seconds:,.0f} rows/s). "
        f"{len(dropped)} expired partitions ({in_expired:,} rows) dropped in {drop_seconds * 1000:.0f} ms "
        f"({drop_seconds / len(dropped) * 1000:.1f} ms per partition, checks and run records included; "
        f"{sum(map(len, statement_seconds.values()))} statements, the slowest kinds: "
        + ", ".join(
            f"{kind} {len(times)}x {sum(times) * 1000:.1f} ms"
            for kind, times in sorted(statement_seconds.items(), key=lambda item: -sum(item[1]))[:6]
        )
        + "). DELETEs of the same rows: "
        + "; ".join(f"{label} {seconds:.2f} s" for label, seconds in delete_times.items())
        + f" (fastest: {in_expired / delete_seconds:,.0f} rows/s), which leave dead rows a VACUUM of the "
        f"table then needs {vacuum_seconds:.1f} s to settle. "
        + (
            f"The drop ran on cold partitions (CHECKPOINT, then the page cache emptied), as expired ones are in "
            f"service; the fastest DELETE from cold took {cold_delete_seconds:.2f} s. "
            if cold
            else "The page cache could not be emptied (not root): the drop freed cached files. "
        )
        + f"Partition files: {_storage_of(tablespace or _fetchall('SHOW data_directory')[0][0])}."
    )
    when = now.astimezone(UTC).date().isoformat()
    return [
        Measurement(
            name=f"maintenance drop of {len(dropped)} expired partitions ({in_expired:,} rows)",
            value=drop_seconds,
            unit="s",
            baseline=f"the fastest DELETE of the same rows ({fastest})",
            baseline_value=delete_seconds,
            target="<= 0.02x (>= 50x faster)",
            ok=drop_seconds * 50 <= delete_seconds,
            note=f"data ending {when}",
        ),
        Measurement(
            name="the same drop",
            value=drop_seconds,
            unit="s",
            baseline="that DELETE + the VACUUM it owes",
            baseline_value=delete_seconds + vacuum_seconds,
            target="<= 0.02x (>= 50x faster)",
            ok=drop_seconds * 50 <= delete_seconds + vacuum_seconds,
        ),
        Measurement(
            name="aggregate 365 days at 1d from rollups",
            value=rollup_read_seconds,
            unit="s",
            baseline="the same over raw rows",
            baseline_value=raw_seconds,
            target="<= 0.05x (>= 20x faster)",
            ok=rollup_read_seconds * 20 <= raw_seconds,
        ),
    ]

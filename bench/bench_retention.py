"""Retention: a batched run against one raw DELETE of the same rows.

The readings table holds `total` readings of one tenant on the free tier (7
days), half of them expired, with a gap around the cutoff so that both ways
delete exactly the same rows. The same data is deleted twice, loaded afresh
before each: once by one `DELETE ... WHERE tenant_id = %s AND ts < cutoff` (the
fastest the database can do it, but one transaction holding every row lock to
the end), once by a retention run (bounded batches, each its own transaction).
Then the worker's peak memory (max RSS of a fresh process that runs only the
retention service) at n and at 10n expired rows.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

from django.db import DatabaseError

from bench.harness import REPO_ROOT, Context, Measurement

TITLE = "Data retention: batched run vs one DELETE, longest batch, worker memory"

SENSORS = 50
STEP = timedelta(seconds=30)  # between two readings of one sensor


def _execute(sql: str, params=None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetchall(sql: str, params=None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _settle(table: str) -> None:
    """Statistics fresh, visibility map set, dirty pages written: each measurement starts alike."""
    _execute(f'VACUUM ANALYZE "{table}"')
    # CHECKPOINT needs a superuser or pg_checkpoint; it only steadies the figures.
    with contextlib.suppress(DatabaseError):
        _execute("CHECKPOINT")


@contextlib.contextmanager
def _bulk_load(table: str):
    """Load without the table's indexes (rebuilt afterwards, the same ones) and without FK
    triggers: minutes of per-row index maintenance become seconds of sorted index builds."""
    constraints = _fetchall(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
        [table],
    )
    names = [name for name, _ in constraints]
    indexes = _fetchall(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND NOT (indexname::text = ANY(%s::text[]))",
        [table, names],
    )
    for name, _ in indexes:
        _execute(f'DROP INDEX "{name}"')
    for name, _ in constraints:
        _execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    # Superuser only; without it the FK checks just make the load slower.
    replica = True
    try:
        _execute("SET session_replication_role = replica")
    except DatabaseError:
        replica = False
    try:
        yield
    finally:
        if replica:
            _execute("SET session_replication_role = DEFAULT")
        for name, definition in constraints:
            _execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            # pg_indexes gives a partitioned table's index as `CREATE INDEX ... ON ONLY <parent>`:
            # run as it is, that makes an INVALID index on the parent and none on its partitions
            # (every check that should probe it scans instead). Without ONLY it is built on each.
            _execute(definition.replace(" ON ONLY ", " ON ", 1))
        invalid = _fetchall(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid "
            "WHERE h.inhparent = %s::regclass AND NOT i.indisvalid "
            "UNION ALL SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid = %s::regclass AND NOT indisvalid",
            [table, table],
        )
        if invalid:
            raise RuntimeError(f"indexes left invalid by the bulk load: {invalid}")
        _settle(table)


def _setup_tenant():
    from telemetry.models import Machine, Sensor
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Retention bench", tier="free")
    machine = Machine.objects.create(tenant=tenant, external_id="press-1", name="Press 1")
    sensors = Sensor.objects.bulk_create(
        Sensor(machine=machine, key=f"s{i}", kind="temperature") for i in range(SENSORS)
    )
    return tenant, [s.pk for s in sensors]


def _load(*, tenant_id, sensor_ids: list[int], expired: int, fresh: int) -> None:
    """An empty table, then `expired` readings in the week before now-8d and `fresh` ones
    in the last 6 days, in time order (as telemetry arrives)."""
    from django.utils import timezone

    from telemetry.models import SensorReading

    table = SensorReading._meta.db_table
    now = timezone.now()
    _execute(f'TRUNCATE "{table}"')
    with _bulk_load(table):
        for count, start in ((expired, now - timedelta(days=15)), (fresh, now - timedelta(days=6))):
            if count:
                _execute(
                    f'INSERT INTO "{table}" (tenant_id, sensor_id, ts, value) '
                    "SELECT %s, (%s::bigint[])[1 + g %% %s], %s + (g / %s) * %s, random() * 100 "
                    "FROM generate_series(0, %s - 1) AS g",
                    [tenant_id, sensor_ids, SENSORS, start, SENSORS, STEP, count],
                )
    # What the every-minute rollup job has done by the time the daily run starts (a run
    # rolls up what is left before it deletes anything): not part of the run's figure.
    from telemetry.rollups import rollups_build

    rollups_build()


def _timed_run(tenant) -> tuple[float, list[float], object]:
    """A retention run of `tenant`: its seconds, each batch's seconds, the finished run."""
    from core.caller import Caller
    from retention import services
    from retention.models import RetentionRun

    batch_seconds: list[float] = []
    real_batch = services._delete_batch

    def timed_batch(**kwargs):
        started = time.perf_counter()
        try:
            return real_batch(**kwargs)
        finally:
            batch_seconds.append(time.perf_counter() - started)

    services._delete_batch = timed_batch
    try:
        started = time.perf_counter()
        run, _ = services.retention_run_request(
            by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.COMMAND
        )
        run = services.retention_run_execute(run_id=run.pk)
        seconds = time.perf_counter() - started
    finally:
        services._delete_batch = real_batch
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    return seconds, batch_seconds, run


# What the measured worker process runs: Django, one retention run, its peak RSS.
_WORKER = """
import json, resource, sys, django
django.setup()
from core.caller import Caller
from retention import services
from retention.models import RetentionRun
from tenants.models import Tenant
tenant = Tenant.objects.get(pk=sys.argv[1])
run, _ = services.retention_run_request(by=Caller.system(tenant_id=tenant.pk), trigger=RetentionRun.Trigger.COMMAND)
run = services.retention_run_execute(run_id=run.pk)
print(json.dumps({"deleted": run.readings_deleted, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _worker_peak_rss_kib(tenant) -> tuple[int, int]:
    """(max RSS in KiB, rows deleted) of a fresh process running one retention run."""
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tenant.pk)],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["max_rss_kib"], report["deleted"]


def run(ctx: Context) -> list[Measurement]:
    from django.utils import timezone

    from retention import conf
    from telemetry.models import SensorReading
    from tenants import tiers

    ctx.truncate_all()
    table = SensorReading._meta.db_table
    total = ctx.scale(2_000_000, 20_000)
    expired = total // 2
    tenant, sensor_ids = _setup_tenant()

    # Baseline: one statement deletes every expired row of the tenant.
    _load(tenant_id=tenant.pk, sensor_ids=sensor_ids, expired=expired, fresh=total - expired)
    cutoff = timezone.now() - timedelta(days=tiers.retention_days("free"))
    started = time.perf_counter()
    baseline_deleted = _execute(f'DELETE FROM "{table}" WHERE tenant_id = %s AND ts < %s', [tenant.pk, cutoff])
    one_delete_seconds = time.perf_counter() - started
    assert baseline_deleted == expired, baseline_deleted

    # The same data afresh, then the retention run.
    _load(tenant_id=tenant.pk, sensor_ids=sensor_ids, expired=expired, fresh=total - expired)
    run_seconds, batch_seconds, finished = _timed_run(tenant)
    assert finished.readings_deleted == expired, finished.readings_deleted
    assert SensorReading.objects.filter(tenant=tenant).count() == total - expired

    # Memory: the worker's peak must not follow the number of rows it deletes.
    small = ctx.scale(100_000, 2_000)
    peaks = {}
    for rows in (small, small * 10):
        _load(tenant_id=tenant.pk, sensor_ids=sensor_ids, expired=rows, fresh=0)
        peaks[rows], deleted = _worker_peak_rss_kib(tenant)
        assert deleted == rows, deleted

    batch_size = conf.batch_size()
    ctx.notes.append(
        f"retention: {total:,} readings of one tenant, {expired:,} expired, deleted by one DELETE and, "
        f"after reloading the same data, by a run in batches of {batch_size:,} rows "
        f"({len(batch_seconds)} batches, the heartbeat table's included); each from a freshly loaded, "
        "vacuumed and checkpointed table. Memory: max RSS of a fresh Python process running one run."
    )
    return [
        Measurement(
            name=f"run deleting {expired:,} of {total:,} readings",
            value=run_seconds,
            unit="s",
            baseline="one raw DELETE of the same rows",
            baseline_value=one_delete_seconds,
            target="<= 1.5x",
            ok=run_seconds <= 1.5 * one_delete_seconds,
        ),
        Measurement(
            name=f"longest batch ({batch_size:,} rows)",
            value=max(batch_seconds),
            unit="s",
            baseline="median batch",
            baseline_value=sorted(batch_seconds)[len(batch_seconds) // 2],
            target="< 1 s",
            ok=max(batch_seconds) < 1.0,
        ),
        Measurement(
            name=f"worker peak RSS, {small * 10:,} rows deleted",
            value=peaks[small * 10] / 1024,
            unit="MiB",
            baseline=f"same at {small:,} rows",
            baseline_value=peaks[small] / 1024,
            target="<= 1.1x (flat)",
            ok=peaks[small * 10] <= 1.1 * peaks[small],
        ),
    ]

"""Telemetry: batch ingest against a raw COPY, and reading one sensor out of a big table.

1. Readings per second for 5,000-reading batches posted to `POST /api/v1/ingest`
   through Django's full request stack (django.test.Client: every middleware,
   API-key authentication, JSON parsing, validation, the one INSERT ... ON
   CONFLICT DO NOTHING), against a raw psycopg `COPY` of the same rows into the
   same table, one COPY per 5,000-row batch, in the same run. Each side starts
   from an empty table; rounds alternate which goes first; best round counts.
   Target: >= 0.5x of COPY (below 0.25x is a defect).
2. Latency of `GET /api/v1/sensor-data/readings?machine=…&sensor=…` (first page,
   100 readings, newest first) with 1,000,000 readings in the table, against
   the same request when the table holds 10,000. The EXPLAIN plan of the
   readings query goes in the note: it must walk the (sensor, ts) index
   backwards rather than sort. Target: <= 1.5x (the cost does not grow with the table).
   The same for a whole machine's readings (no `sensor`), read sensor by sensor.
3. `GET /api/v1/sensor-data/aggregate`, 30 days of one sensor at 1h at the big
   table: latency, the rows its index scan read against the readings in the
   range (= 1.0x) and the rows its plan sorts (= 0: a HashAggregate over the
   index scan, see telemetry.selectors._aggregate_sql).
"""

import json
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.harness import Context, Measurement

TITLE = "Telemetry: batch ingest vs COPY, sensor readings on a big table"
INGEST_PATH = "/api/v1/ingest"
READINGS_PATH = "/api/v1/sensor-data/readings"
BATCH_SIZE = 5000
SENSOR_COUNT = 10
MACHINE = "bench-press"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _setup():
    from apikeys.services import api_key_create
    from core.caller import Caller
    from telemetry.services import machine_create
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Bench Plant", tier="enterprise")
    machine = machine_create(
        by=Caller.system(tenant_id=tenant.pk),
        external_id=MACHINE,
        name="Bench press",
        sensors=[(f"s{i}", "temperature") for i in range(SENSOR_COUNT)],
    )
    sensor_ids = dict(machine.sensors.values_list("key", "id"))
    agent = api_key_create(by=Caller.system(tenant_id=tenant.id), name="bench agent", scopes_requested="edge_agent")
    dashboard = api_key_create(
        by=Caller.system(tenant_id=tenant.id), name="bench dashboard", scopes_requested="read_only"
    )
    return tenant, sensor_ids, agent.secret, dashboard.secret


def _batches(count: int, sensor_ids: dict[str, int], tenant_id):
    """`count` batches of BATCH_SIZE readings, each reading new: (JSON body, rows for COPY)."""
    batches = []
    per_batch = BATCH_SIZE // SENSOR_COUNT
    for b in range(count):
        readings, rows = [], []
        for step in range(per_batch):
            ts = START + timedelta(seconds=b * per_batch + step)
            iso = ts.isoformat().replace("+00:00", "Z")
            for i in range(SENSOR_COUNT):
                value = round(20 + i + (step % 60) / 10, 3)
                readings.append({"machine": MACHINE, "sensor": f"s{i}", "ts": iso, "value": value})
                rows.append((tenant_id, sensor_ids[f"s{i}"], ts, value))
        batches.append((json.dumps({"readings": readings}).encode(), rows))
    return batches


def _truncate_readings() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE telemetry_sensorreading")


# The baselines' table: the readings table's columns, defaults and indexes (LIKE ... INCLUDING ALL
# copies no foreign keys; the readings table has none either).
BASELINE_TABLE = "bench_readings_like"
BASELINE_FK_TABLE = "bench_readings_like_fk"
COPY_TYPES = ["uuid", "bigint", "timestamptz", "float8"]


def _baseline_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (BASELINE_TABLE, BASELINE_FK_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"CREATE TABLE {table} (LIKE telemetry_sensorreading INCLUDING ALL)")
        # What the readings table had before migration 0003: two foreign keys, checked per row.
        cursor.execute(
            f"ALTER TABLE {BASELINE_FK_TABLE} ADD FOREIGN KEY (sensor_id) REFERENCES telemetry_sensor (id), "
            "ADD FOREIGN KEY (tenant_id) REFERENCES tenants_tenant (id)"
        )


def _truncate(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")


def _raw_copy(table: str, rows) -> None:
    """The fastest honest way to store the rows: one binary COPY of pre-built tuples, autocommit."""
    from django.db import connection

    connection.ensure_connection()
    sql = f"COPY {table} (tenant_id, sensor_id, ts, value) FROM STDIN (FORMAT BINARY)"
    with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def _staged_copy(table: str, rows) -> None:
    """The idempotent floor: binary COPY into a temp table, then INSERT ... ON CONFLICT DO NOTHING."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    with raw.transaction(), raw.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_staging (tenant_id uuid, sensor_id bigint, ts timestamptz, value float8) "
            "ON COMMIT DROP"
        )
        with cursor.copy("COPY bench_staging FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, sensor_id, ts, value) SELECT * FROM bench_staging "
            "ON CONFLICT (sensor_id, ts, tenant_id) DO NOTHING"
        )


def _range_partition_for(start: datetime, batch_count: int) -> tuple[str, list[str]]:
    """The readings partition (on PostgreSQL, a week-wide range partition, not the default one)
    that every reading of the batches falls in, and the partitions created here for it."""
    from telemetry import partitions

    end = start + timedelta(seconds=batch_count * (BATCH_SIZE // SENSOR_COUNT))
    if not partitions.is_partitioned():
        return "telemetry_sensorreading", []
    created = partitions.partitions_ensure(since=start, through=end)
    for partition in partitions.partition_list():
        if partition.start is not None and partition.start <= start and end < partition.end:
            # Ids come from the parent's identity; a row written straight into a partition takes
            # the next one like a routed row does (COPY cannot call nextval itself).
            _execute_sql(
                f'ALTER TABLE "{partition.name}" ALTER COLUMN id SET DEFAULT '
                "nextval(pg_get_serial_sequence('telemetry_sensorreading', 'id'))"
            )
            return partition.name, created
    raise RuntimeError(f"no single readings partition holds {start} .. {end}")


def _execute_sql(sql: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)


def _put_back(leaf: str, created: list[str]) -> None:
    """The partitions as they were: those made for the batches dropped, the id default gone."""
    if leaf == "telemetry_sensorreading":
        return
    if leaf not in created:
        _execute_sql(f'ALTER TABLE "{leaf}" ALTER COLUMN id DROP DEFAULT')
    for name in created:
        _execute_sql(f'DROP TABLE "{name}"')


def _ingest_seconds(client: Client, secret: str, batches) -> float:
    start = time.perf_counter()
    for body, _ in batches:
        response = client.post(
            INGEST_PATH, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.content[:300]!r}")
    return time.perf_counter() - start


def _rows_seconds(write, table: str, batches) -> float:
    start = time.perf_counter()
    for _, rows in batches:
        write(table, rows)
    return time.perf_counter() - start


def _count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def _ingest_figures(ctx: Context, tenant, sensor_ids, secret) -> list[Measurement]:
    client = Client()
    batch_count, rounds = ctx.scale(10, 3), ctx.scale(5, 2)
    batches = _batches(batch_count, sensor_ids, tenant.id)
    rows = batch_count * BATCH_SIZE
    _baseline_tables()
    # A range partition for the batches' rows (dropped again afterwards: the readings figures
    # that follow find the table as they always did).
    leaf, created_partitions = _range_partition_for(START, batch_count)
    # Warm up: imports, the connection, the key's last_used_at write.
    _ingest_seconds(client, secret, batches[:1])
    sides = {
        "ingest": ("telemetry_sensorreading", lambda: _ingest_seconds(client, secret, batches)),
        "copy": (BASELINE_TABLE, lambda: _rows_seconds(_raw_copy, BASELINE_TABLE, batches)),
        # The same partitioned table the ingest writes to: COPY through the parent (routed per
        # row, as ingest's is), and straight into the one partition the rows belong to.
        "copy_parent": (
            "telemetry_sensorreading",
            lambda: _rows_seconds(_raw_copy, "telemetry_sensorreading", batches),
        ),
        "copy_leaf": (leaf, lambda: _rows_seconds(_raw_copy, leaf, batches)),
        "floor": (BASELINE_TABLE, lambda: _rows_seconds(_staged_copy, BASELINE_TABLE, batches)),
        "copy_fk": (BASELINE_FK_TABLE, lambda: _rows_seconds(_raw_copy, BASELINE_FK_TABLE, batches)),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        # Rotate the order, so that drift (autovacuum, others' load) hits every side alike.
        names = list(sides)
        names = names[index % len(names) :] + names[: index % len(names)]
        for name in names:
            table, measure = sides[name]
            _truncate(table)
            times[name].append(measure())
            if _count(table) != rows:
                raise RuntimeError(f"{name} stored the wrong number of rows")
    # A resend of the last batch stores nothing and is answered alike.
    _ingest_seconds(client, secret, batches[-1:])
    if _count("telemetry_sensorreading") != rows:
        raise RuntimeError("a resent batch was stored twice")
    resend = min(_ingest_seconds(client, secret, batches[-1:]) for _ in range(3))
    rate = {name: rows / min(t) for name, t in times.items()}
    median_ms = {name: statistics.median(t) / batch_count * 1000 for name, t in times.items()}
    rss = _ingest_peak_rss(ctx)
    ctx.notes.append(
        f"Ingest vs COPY: {batch_count} batches of {BATCH_SIZE} new readings ({SENSOR_COUNT} sensors), best of "
        f"{rounds} rotating rounds, each side from an empty table. Ingest: POST /api/v1/ingest through "
        "django.test.Client (every middleware, API-key authentication, decoding, validation, name resolution, "
        "the sensor lock, one binary COPY, a durable commit). Raw COPY: the same rows pre-built as tuples, one "
        f"binary COPY (psycopg set_types) per batch into {BASELINE_TABLE} (LIKE telemetry_sensorreading "
        "INCLUDING ALL: same columns, defaults, indexes). Floor: binary COPY into a temp table, then INSERT ... "
        "ON CONFLICT DO NOTHING, per batch. Medians per batch: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in median_ms.items())
        + f". A resent 5,000-reading batch (all conflicts, the staged path): {resend * 1000:.0f} ms."
    )
    _truncate("telemetry_sensorreading")
    _put_back(leaf, created_partitions)
    # The fastest honest way to put these rows into the partitioned table.
    fastest = max(("copy_parent", "copy_leaf"), key=rate.get)
    ctx.notes.append(
        f"Ingest into the partitioned readings table (rows in the range partition {leaf}) against raw binary COPY "
        f"into the same partitioned table: through the parent {rate['copy_parent']:,.0f} readings/s, straight into "
        f"the partition {rate['copy_leaf']:,.0f} readings/s; the faster is the baseline. Ingest: "
        f"{rate['ingest']:,.0f} readings/s."
    )
    ingest_vs_copy = rate["ingest"] / rate["copy"]
    return [
        Measurement(
            "ingest, 5,000-reading batches, into the partitioned readings table",
            rate["ingest"],
            "readings/s",
            baseline="raw binary COPY into the same partitioned table ("
            + ("through the parent" if fastest == "copy_parent" else "into the partition")
            + ")",
            baseline_value=rate[fastest],
            target=">= 0.5x",
            ok=rate["ingest"] / rate[fastest] >= 0.5,
        ),
        Measurement(
            "ingest, 5,000-reading batches through the API",
            rate["ingest"],
            "readings/s",
            baseline="raw binary COPY, table LIKE readings",
            baseline_value=rate["copy"],
            target=">= 0.5x (defect < 0.35x)",
            ok=ingest_vs_copy >= 0.5,
        ),
        Measurement(
            "ingest against the idempotent floor",
            rate["ingest"],
            "readings/s",
            baseline="binary COPY to temp + INSERT ON CONFLICT",
            baseline_value=rate["floor"],
        ),
        Measurement(
            "raw binary COPY into the table with the two foreign keys it had",
            rate["copy_fk"],
            "readings/s",
            baseline="same COPY without foreign keys",
            baseline_value=rate["copy"],
            note="why the readings table has no foreign keys (migration telemetry 0003)",
        ),
        Measurement(
            "ingest worker peak RSS, one 5,000-reading batch",
            rss["after"],
            "MiB",
            baseline="same process before the batch",
            baseline_value=rss["before"],
            target="<= 1.5x",
            ok=rss["after"] / rss["before"] <= 1.5,
        ),
    ]


def _ingest_peak_rss(ctx: Context) -> dict[str, float]:
    """Max RSS of a fresh process before and after one 5,000-reading ingest (bench.ingest_rss)."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.ingest_rss"],
        env=ctx.server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _load_rows(tenant_id, sensor_ids, per_sensor: int, offset: int) -> None:
    """per_sensor readings of every sensor, one a minute, after the first `offset` minutes.

    Generated by the server: loading a million rows is setup, not what is measured.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO telemetry_sensorreading (tenant_id, sensor_id, ts, value) "
            "SELECT %s, s.id, %s + m * INTERVAL '1 minute', (m %% 100)::float8 "
            "FROM generate_series(%s, %s) AS m CROSS JOIN unnest(%s::bigint[]) AS s(id)",
            [tenant_id, START, offset, offset + per_sensor - 1, list(sensor_ids.values())],
        )
        cursor.execute("VACUUM ANALYZE telemetry_sensorreading")


def _readings_latency(client: Client, secret: str, count: int, params: dict) -> tuple[float, float, list[str]]:
    header = f"Bearer {secret}"
    for _ in range(5):
        client.get(READINGS_PATH, params, HTTP_AUTHORIZATION=header)
    # The fastest of many requests: the small and the big table are timed a minute
    # apart on a shared machine, and the fastest request is what load spikes leave
    # untouched. A sort of the sensor's readings would still show in every request.
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(READINGS_PATH, params, HTTP_AUTHORIZATION=header)
        times.append(time.perf_counter() - start)
        if response.status_code != 200 or len(response.json()["results"]) != 100:
            raise RuntimeError(f"readings answered {response.status_code}: {response.content[:300]!r}")
    from django.db import connection

    with CaptureQueriesContext(connection) as captured:
        client.get(READINGS_PATH, params, HTTP_AUTHORIZATION=header)
    sql = next(q["sql"] for q in captured.captured_queries if 'FROM "telemetry_sensorreading"' in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql)
        plan = [row[0] for row in cursor.fetchall()]
    return min(times), statistics.median(times), plan


def _readings_figures(ctx: Context, tenant, sensor_ids, secret) -> list[Measurement]:
    from telemetry.models import SensorReading

    client = Client()
    requests = ctx.scale(200, 30)
    total = ctx.scale(10_000_000, 50_000)
    small = 10_000
    one_sensor = {"machine": MACHINE, "sensor": "s3"}
    whole_machine = {"machine": MACHINE}
    _truncate_readings()
    _load_rows(tenant.id, sensor_ids, small // SENSOR_COUNT, 0)
    small_one, small_one_median, _ = _readings_latency(client, secret, requests, one_sensor)
    small_all, small_all_median, _ = _readings_latency(client, secret, requests, whole_machine)
    _load_rows(tenant.id, sensor_ids, (total - small) // SENSOR_COUNT, small // SENSOR_COUNT)
    rows = SensorReading.objects.count()
    big_one, big_one_median, plan = _readings_latency(client, secret, requests, one_sensor)
    big_all, big_all_median, plan_all = _readings_latency(client, secret, requests, whole_machine)
    aggregate = _aggregate_figures(ctx, client, secret, ctx.scale(30, 10), rows)
    index_line = next((line.strip() for line in plan if "Index" in line), plan[0].strip())
    uses_index = ("sensor_ts_tenant_unique" in index_line or "sensor_id_ts_tenant_id_key" in index_line) and (
        "Backward" in index_line
    )
    # A Sort node, not a Merge Append's "Sort Key" (partitions merged in order, no sort).
    sorts = any(re.match(r"(?:->\s+)?(?:Incremental )?Sort\s+\(", line.strip()) for line in plan)
    walks = sum("Index Scan Backward" in line for line in plan_all)
    # One walk per sensor in each partition (a Merge Append of them) on PostgreSQL.
    from telemetry import partitions

    partition_count = len(partitions.partition_list()) if partitions.is_partitioned() else 1
    ctx.notes.append(
        f"Readings latency: the fastest of {requests} requests for the first page (100 readings) through "
        f"django.test.Client with a read_only key, at {small:,} and at {rows:,} rows ({SENSOR_COUNT} sensors); "
        f"medians one sensor {small_one_median * 1000:.1f} -> {big_one_median * 1000:.1f} ms, whole machine "
        f"{small_all_median * 1000:.1f} -> {big_all_median * 1000:.1f} ms. "
        "One sensor, plan: " + " / ".join(line.strip() for line in plan[:3]) + ". Whole machine: a UNION ALL "
        f"of one bounded backward index walk per sensor and partition ({walks} in the plan, {SENSOR_COUNT} sensors x "
        f"{partition_count} partitions), merged."
    )
    ctx.notes.append("Plan of the one-sensor readings page at 10M rows: " + " / ".join(line.strip() for line in plan))
    return [
        *aggregate,
        Measurement(
            f"GET /sensor-data/readings, one sensor, {rows:,} rows in the table",
            big_one * 1000,
            "ms",
            baseline=f"same request at {small:,} rows",
            baseline_value=small_one * 1000,
            target="<= 1.5x, index scan, no sort",
            ok=big_one / small_one <= 1.5 and uses_index and not sorts,
            note=index_line,
        ),
        Measurement(
            f"GET /sensor-data/readings, whole machine ({SENSOR_COUNT} sensors), {rows:,} rows",
            big_all * 1000,
            "ms",
            baseline=f"same request at {small:,} rows",
            baseline_value=small_all * 1000,
            target="<= 1.5x",
            ok=big_all / small_all <= 1.5 and walks == SENSOR_COUNT * partition_count,
        ),
    ]


AGGREGATE_PATH = "/api/v1/sensor-data/aggregate"


def _aggregate_figures(ctx: Context, client: Client, secret: str, count: int, rows: int) -> list[Measurement]:
    """30 days of one sensor at 1h: latency, plan, and the rows its scan read against the rows in the range."""
    from django.db import connection

    since = START + timedelta(days=1)
    until = since + timedelta(days=30)
    params = {"machine": MACHINE, "sensor": "s3", "bucket": "1h", "from": since.isoformat(), "to": until.isoformat()}
    header = f"Bearer {secret}"
    for _ in range(3):
        client.get(AGGREGATE_PATH, params, HTTP_AUTHORIZATION=header)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(AGGREGATE_PATH, params, HTTP_AUTHORIZATION=header)
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"aggregate answered {response.status_code}: {response.content[:300]!r}")
    buckets = response.json()["buckets"]
    with CaptureQueriesContext(connection) as captured:
        client.get(AGGREGATE_PATH, params, HTTP_AUTHORIZATION=header)
    # The raw aggregate itself (telemetry.selectors._aggregate_sql), not the other queries the request
    # makes on the table (without a broker the endpoint brings the rollups up to date first).
    sql = next((q["sql"] for q in captured.captured_queries if "AS in_range GROUP BY bucket" in q["sql"]), None)
    if sql is None:
        raise RuntimeError("no raw aggregate among: " + " || ".join(q["sql"][:120] for q in captured.captured_queries))
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql)
        plan = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT count(*) FROM telemetry_sensorreading r JOIN telemetry_sensor s ON s.id = r.sensor_id "
            "WHERE s.key = 's3' AND r.ts >= %s AND r.ts < %s",
            [since, until],
        )
        in_range = cursor.fetchone()[0]
    # The index's scans: an Index Scan, or the Bitmap Index Scan under a Bitmap Heap Scan, one per
    # partition the range reaches (readings are partitioned by week); their rows add up.
    scans = [line for line in plan if ("Index Scan" in line or "Index Only Scan" in line) and "actual rows=" in line]
    scan = scans[0] if scans else ""
    scanned = sum(int(line.split("actual rows=")[1].split()[0]) for line in scans) if scans else -1
    seq_scan = any("Seq Scan" in line for line in plan)
    sorted_rows = sum(
        int(line.split("actual rows=")[1].split()[0]) for line in plan if "Sort" in line and "actual rows=" in line
    )
    ctx.notes.append(
        f"Aggregate at {rows:,} rows: 30 days of one sensor at 1h ({len(buckets)} buckets, {in_range:,} readings "
        f"in the range), median {statistics.median(times) * 1000:.1f} ms of {count} requests. Plan: "
        + " / ".join(line.strip() for line in plan)
    )
    return [
        Measurement(
            f"GET /sensor-data/aggregate, 30 days at 1h, {rows:,} rows in the table",
            min(times) * 1000,
            "ms",
            baseline="median",
            baseline_value=statistics.median(times) * 1000,
        ),
        Measurement(
            "aggregate: rows its index scan read",
            scanned,
            "rows",
            baseline="readings in the 30 days",
            baseline_value=in_range,
            target="= 1.0x, index scan, no seq scan",
            ok=scanned == in_range and not seq_scan and "Index" in scan,
            note=f"{len(scans)} index scan(s), the first: {scan.strip()}",
        ),
        Measurement(
            "aggregate: rows its plan sorts",
            sorted_rows,
            "rows",
            baseline="readings in the 30 days",
            baseline_value=in_range,
            target="= 0 (grouped in a hash table, no sort)",
            ok=sorted_rows == 0,
            note=plan[0].strip(),
        ),
    ]


def run(ctx: Context) -> list[Measurement]:
    ctx.truncate_all()
    tenant, sensor_ids, agent_secret, dashboard_secret = _setup()
    figures = _ingest_figures(ctx, tenant, sensor_ids, agent_secret)
    figures += _readings_figures(ctx, tenant, sensor_ids, dashboard_secret)
    ctx.truncate_all()
    return figures

"""Telemetry writes: batch ingest, heartbeats, machines.

Ingest is the hottest path of the service (every agent, every few seconds):
- A well-typed body is decoded and type-checked by msgspec in C
  (`ingest_body_decode`); anything else falls back to `json.loads` and the
  plain-Python checks below, which name the first bad reading. Both paths
  accept exactly the same batches.
- Every machine and sensor of a batch is resolved in one query.
- On PostgreSQL the batch is written with one binary `COPY` (the common case:
  every reading is new). A resent batch makes that COPY fail on the unique
  (sensor, ts) index; it is then written again through a staging table with
  `INSERT … ON CONFLICT DO NOTHING`, so nothing is stored twice.
- The readings table has no foreign keys (their per-row triggers cost two
  thirds of a COPY's time). The batch's sensors are locked `FOR KEY SHARE`
  in the writing transaction, as a foreign key would, and a database trigger
  deletes a sensor's readings with the sensor (telemetry migration 0003).

Ingest and heartbeats are machine traffic, not changes an admin or user makes,
so they are not written to the audit log (it would double every write).
"""

import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Annotated, Any

import msgspec
import psycopg
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import audit_record
from core import errors
from core.caller import Caller
from core.text import storable_text
from telemetry.models import (
    CANONICAL_UNITS,
    VALUE_BOUNDS,
    AgentHeartbeat,
    Machine,
    Sensor,
    SensorReading,
    validate_identifier,
)
from telemetry.selectors import machine_scope

logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 5000
MAX_FUTURE_SKEW = timedelta(minutes=5)
READING_FIELDS = ("machine", "sensor", "ts", "value")
_READING_FIELD_SET = frozenset(READING_FIELDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Messages an agent's developer reads; the index of the reading is added by the API.
REQUIRED = "This field is required."
UNKNOWN_FIELD = "Unknown field."
NOT_AN_OBJECT = "Invalid data. Expected a dictionary, but got {type}."
NOT_A_STRING = "Must be a string."
BLANK = "This field may not be blank."
UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."
NOT_A_NUMBER = "Must be a number."
NOT_FINITE = "Must be a finite number (not NaN or infinite)."
BAD_TS = "Must be an ISO 8601 datetime with a timezone, e.g. 2026-04-04T10:00:00Z."
NO_TIMEZONE = "Must include a timezone (Z or an offset such as +00:00)."
FUTURE_TS = "Must not be more than 5 minutes in the future."
BEFORE_EPOCH_TS = "Must not be before 1970-01-01T00:00:00Z."
UNKNOWN_MACHINE = "Unknown machine {machine!r}."
UNKNOWN_SENSOR = "Unknown sensor {sensor!r} on machine {machine!r}."
NOT_A_LIST = "Expected a list of readings."
EMPTY_BATCH = "A batch needs at least one reading."
BATCH_TOO_LARGE = "A batch holds at most {max} readings; this one has {count}."
OUT_OF_RANGE = "Must be between {low} and {high} ({unit}) for a {kind} sensor."
_UNIT_SYMBOLS = {"celsius": "°C", "bar": "bar", "mm_s": "mm/s", "A": "A", "rpm": "rpm", "": "no unit"}


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def out_of_range_message(kind: str) -> str:
    low, high = VALUE_BOUNDS[kind]
    unit = _UNIT_SYMBOLS[CANONICAL_UNITS[kind]]
    return OUT_OF_RANGE.format(low=_number_text(low), high=_number_text(high), unit=unit, kind=kind)


BATCH_CONFLICT = "A machine or sensor of this batch was deleted while it was being stored; nothing was stored."
MACHINE_SCOPED_CREATE = (
    "A machine-scoped API key cannot create machines: a new machine would be outside the key's machines."
)


class BatchInvalid(errors.RuleViolation):
    """The batch is refused as a whole: 400 `{"readings": ...}`.

    `index` is the position of the first bad reading and `errors` its field
    errors (`{"sensor": ["..."]}`), answered as `{"readings": {"<index>": errors}}`;
    with `index` None, `errors` is about the batch itself (a list of messages).
    """

    def __init__(self, errors: dict[str, list[str]] | list[str], index: int | None = None):
        super().__init__({"readings": errors if index is None else {str(index): errors}})
        self.errors = errors
        self.index = index


class BatchConflict(errors.Conflict):
    """A machine or sensor of the batch was deleted while the batch was being stored: 409."""

    default_message = BATCH_CONFLICT


class _BadReading(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors


def _reading_errors(reading: Any, now_us: int) -> dict[str, list[str]]:
    """Every field error of one reading (the slow path, only for a bad one)."""
    if not isinstance(reading, dict):
        return {"non_field_errors": [NOT_AN_OBJECT.format(type=type(reading).__name__)]}
    errors: dict[str, list[str]] = {}
    for name in reading:
        if name not in _READING_FIELD_SET:
            errors[name] = [UNKNOWN_FIELD]
    for name in READING_FIELDS:
        if name not in reading:
            errors[name] = [REQUIRED]
            continue
        value = reading[name]
        try:
            if name in ("machine", "sensor"):
                _check_identifier(name, value)
            elif name == "ts":
                _parse_ts(value, now_us)
            else:
                _check_value(value)
        except _BadReading as exc:
            errors.update(exc.errors)
    return errors


def _check_identifier(name: str, value: Any) -> None:
    if type(value) is not str:
        raise _BadReading({name: [NOT_A_STRING]})
    if not value:
        raise _BadReading({name: [BLANK]})
    if not storable_text(value):
        raise _BadReading({name: [UNSTORABLE]})


def _parse_ts(value: Any, now_us: int) -> int:
    """Microseconds since the epoch, UTC."""
    if type(value) is not str:
        raise _BadReading({"ts": [BAD_TS]})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _BadReading({"ts": [BAD_TS]}) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _BadReading({"ts": [NO_TIMEZONE]})
    micros = (parsed - _EPOCH) // _MICROSECOND
    if micros > now_us:
        raise _BadReading({"ts": [FUTURE_TS]})
    # No telemetry is older than the Unix epoch; the floor also keeps values such as
    # 0001-01-01T00:00:00+01:00 (before datetime.min in UTC) out of the database.
    if micros < 0:
        raise _BadReading({"ts": [BEFORE_EPOCH_TS]})
    return micros


def _check_value(value: Any) -> float:
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return value
        raise _BadReading({"value": [NOT_FINITE]})
    if kind is int:  # not bool: type() is exact
        try:
            return float(value)
        except OverflowError:
            raise _BadReading({"value": [NOT_FINITE]}) from None
    raise _BadReading({"value": [NOT_A_NUMBER]})


@dataclass(frozen=True)
class _ParsedBatch:
    machines: list[str]
    sensors: list[str]
    timestamps: list[datetime]
    values: list[float]
    first_bad: int | None
    first_bad_errors: dict[str, list[str]]


def _parse_batch(readings: Sequence[Any], now_us: int) -> _ParsedBatch:
    """Check each reading on its own; stop at the first bad one."""
    machines: list[str] = []
    sensors: list[str] = []
    timestamps: list[datetime] = []
    values: list[float] = []
    # A batch names few machines and sensors, each thousands of times: check each name once.
    checked_names: set[str] = set()
    for index, reading in enumerate(readings):
        try:
            if type(reading) is not dict or reading.keys() != _READING_FIELD_SET:
                raise _BadReading({})
            machine, sensor = reading["machine"], reading["sensor"]
            if type(machine) is not str or type(sensor) is not str or not machine or not sensor:
                raise _BadReading({})
            for name in (machine, sensor):
                if name not in checked_names:
                    if not storable_text(name):
                        raise _BadReading({})
                    checked_names.add(name)
            ts_micros = _parse_ts(reading["ts"], now_us)
            value = _check_value(reading["value"])
        except _BadReading:
            return _ParsedBatch(machines, sensors, timestamps, values, index, _reading_errors(reading, now_us))
        machines.append(machine)
        sensors.append(sensor)
        timestamps.append(_EPOCH + ts_micros * _MICROSECOND)
        values.append(value)
    return _ParsedBatch(machines, sensors, timestamps, values, None, {})


# --- The fast path: a well-typed body, decoded by msgspec --------------------------------

_Name = Annotated[str, msgspec.Meta(min_length=1)]


class _TypedReading(msgspec.Struct, forbid_unknown_fields=True):
    machine: _Name
    sensor: _Name
    # A string, parsed by datetime.fromisoformat as on the slow path, so both accept the same texts.
    ts: str
    # msgspec refuses bools, NaN, Infinity and out-of-range numbers: those take the slow path.
    value: float


class _TypedBody(msgspec.Struct, forbid_unknown_fields=True):
    readings: Annotated[list[_TypedReading], msgspec.Meta(min_length=1, max_length=MAX_BATCH_SIZE)]


_body_decoder = msgspec.json.Decoder(_TypedBody)


class TypedReadings(list):
    """A batch whose readings msgspec has type-checked: `_TypedReading`s, 1 to MAX_BATCH_SIZE of them."""


def ingest_body_decode(body: bytes) -> dict[str, Any] | None:
    """The body as `{"readings": TypedReadings}` when it is a well-typed batch, else None.

    None sends the caller to `json.loads` and the slow checks, which say what is
    wrong; no error is reported from here.
    """
    try:
        decoded = _body_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return {"readings": TypedReadings(decoded.readings)}


def _resolve_typed_batch(
    *, tenant_id: uuid.UUID, readings: TypedReadings, now: datetime, machine_ids: list[str] | None
) -> list[tuple] | None:
    """The common case in one pass: the rows to store, or None at the first doubt (the slow path names it).

    msgspec has checked the types; this makes the checks it cannot (names,
    timestamps, the sensor's kind's bounds) with the batch's machines and
    sensors resolved in one query first.
    """
    machines = {reading.machine for reading in readings}
    if not all(storable_text(machine) for machine in machines):
        return None
    _, sensor_ids = _sensor_ids_by_name(tenant_id=tenant_id, machines=machines, machine_ids=machine_ids)
    targets = {name: (sensor_id, *VALUE_BOUNDS[kind]) for name, (sensor_id, kind) in sensor_ids.items()}
    tenant = uuid.UUID(str(tenant_id))
    rows: list[tuple] = []
    append = rows.append
    fromisoformat = datetime.fromisoformat
    for reading in readings:
        target = targets.get((reading.machine, reading.sensor))
        if target is None:
            return None
        sensor_id, low, high = target
        value = reading.value
        if not low <= value <= high:
            return None
        try:
            ts = fromisoformat(reading.ts)
        except ValueError:
            return None
        if ts.tzinfo is None or ts.utcoffset() is None or ts > now or ts < _EPOCH:
            return None
        append((tenant, sensor_id, ts, value))
    return rows


def _sensor_ids_by_name(
    *, tenant_id: uuid.UUID, machines: Iterable[str], machine_ids: list[str] | None = None
) -> tuple[set[str], dict[tuple[str, str], tuple[int, str]]]:
    """The tenant's machines among `machines` (within `machine_ids` if given), and their sensors' ids and
    kinds: one query."""
    known_machines: set[str] = set()
    sensor_ids: dict[tuple[str, str], tuple[int, str]] = {}
    queryset = Machine.objects.filter(tenant_id=tenant_id, external_id__in=set(machines))
    if machine_ids is not None:
        # A machine out of a key's scope is, to that key, one that does not exist.
        queryset = queryset.filter(id__in=machine_ids)
    rows = queryset.values_list("external_id", "sensors__key", "sensors__id", "sensors__kind")
    for external_id, key, sensor_id, kind in rows:
        known_machines.add(external_id)
        if sensor_id is not None:
            sensor_ids[(external_id, key)] = (sensor_id, kind)
    return known_machines, sensor_ids


def readings_ingest(
    *,
    by: Caller,
    readings: Any,
    admit: Callable[[int], Callable[[], None] | None] | None = None,
) -> int:
    """Validate a batch of readings as a whole and store it in one transaction.

    `readings` is the parsed JSON, or the TypedReadings of ingest_body_decode.
    All or nothing: the first bad reading (in batch order) raises BatchInvalid
    naming its index, and nothing is stored. A reading already stored (same
    sensor and ts), or repeated within the batch, is skipped, the first one
    kept. Returns the number of readings in the batch.

    A machine-scoped key (`by`) limits the batch to its machines: any other
    is refused exactly as an unknown one. `admit(count)` is called
    once the batch is valid and before it is stored (a rate limit may refuse
    it by raising); it may return an undo, called if the batch is not stored.
    """
    tenant_id, machine_ids = by.tenant_id, machine_scope(by=by)
    now = timezone.now() + MAX_FUTURE_SKEW
    if type(readings) is TypedReadings:
        rows = _resolve_typed_batch(tenant_id=tenant_id, readings=readings, now=now, machine_ids=machine_ids)
        if rows is not None:
            return _store_batch(rows=rows, admit=admit)
        readings = [msgspec.structs.asdict(reading) for reading in readings]
    batch = _parse_any_batch(readings, now)
    return _ingest_parsed(tenant_id=tenant_id, readings=readings, batch=batch, machine_ids=machine_ids, admit=admit)


def _store_batch(*, rows: list[tuple], admit: Callable[[int], Callable[[], None] | None] | None) -> int:
    undo = admit(len(rows)) if admit is not None else None
    try:
        _write_readings(rows=rows)
    except BaseException:  # BatchConflict (a sensor deleted meanwhile) included
        if undo is not None:
            undo()
        raise
    return len(rows)


def _parse_any_batch(readings: Any, now: datetime) -> _ParsedBatch:
    if not isinstance(readings, list):
        raise BatchInvalid([NOT_A_LIST])
    if not readings:
        raise BatchInvalid([EMPTY_BATCH])
    if len(readings) > MAX_BATCH_SIZE:
        raise BatchInvalid([BATCH_TOO_LARGE.format(max=MAX_BATCH_SIZE, count=len(readings))])
    return _parse_batch(readings, (now - _EPOCH) // _MICROSECOND)


def _ingest_parsed(
    *,
    tenant_id: uuid.UUID,
    readings: Any,
    batch: _ParsedBatch,
    machine_ids: list[str] | None,
    admit: Callable[[int], Callable[[], None] | None] | None,
) -> int:
    # Only readings before the first bad one (or all) need their names resolved:
    # an unknown name earlier than a malformed reading is the first error.
    names = batch.machines
    bad_reading = readings[batch.first_bad] if batch.first_bad is not None else None
    if (
        isinstance(bad_reading, dict)
        and isinstance(bad_reading.get("machine"), str)
        and storable_text(bad_reading["machine"])
    ):
        names = [*names, bad_reading["machine"]]
    known_machines, sensor_ids = _sensor_ids_by_name(tenant_id=tenant_id, machines=names, machine_ids=machine_ids)
    resolved: list[int] = []
    for index, (machine, sensor, value) in enumerate(zip(batch.machines, batch.sensors, batch.values, strict=True)):
        found = sensor_ids.get((machine, sensor))
        if found is None:
            if machine not in known_machines:
                raise BatchInvalid({"machine": [UNKNOWN_MACHINE.format(machine=machine)]}, index=index)
            raise BatchInvalid({"sensor": [UNKNOWN_SENSOR.format(sensor=sensor, machine=machine)]}, index=index)
        sensor_id, kind = found
        low, high = VALUE_BOUNDS[kind]
        if not low <= value <= high:
            raise BatchInvalid({"value": [out_of_range_message(kind)]}, index=index)
        resolved.append(sensor_id)
    if batch.first_bad is not None:
        errors = dict(batch.first_bad_errors)
        # The bad reading may also name an unknown machine or sensor, or a value out of range: say so too.
        if isinstance(bad_reading, dict) and "machine" not in errors and "sensor" not in errors:
            machine, sensor = bad_reading.get("machine"), bad_reading.get("sensor")
            if (
                isinstance(machine, str)
                and isinstance(sensor, str)
                and storable_text(machine)
                and storable_text(sensor)
            ):
                if machine not in known_machines:
                    errors["machine"] = [UNKNOWN_MACHINE.format(machine=machine)]
                elif (machine, sensor) not in sensor_ids:
                    errors["sensor"] = [UNKNOWN_SENSOR.format(sensor=sensor, machine=machine)]
                elif "value" not in errors:
                    kind = sensor_ids[(machine, sensor)][1]
                    low, high = VALUE_BOUNDS[kind]
                    if not low <= bad_reading.get("value") <= high:
                        errors["value"] = [out_of_range_message(kind)]
        raise BatchInvalid(errors, index=batch.first_bad)

    tenant = uuid.UUID(str(tenant_id))
    return _store_batch(rows=list(zip(repeat(tenant), resolved, batch.timestamps, batch.values)), admit=admit)


def _write_readings(*, rows: list[tuple], lock_sensors: bool = True) -> None:
    """Store (tenant_id, sensor_id, ts, value) rows in one transaction, skipping any already stored
    (same sensor and ts) or repeated.

    First as if every row were new (on PostgreSQL a plain binary COPY, the
    common case); if one was not, the COPY fails on the unique index, its
    transaction is rolled back, and a second transaction writes the rows
    through a staging table, skipping the conflicts.
    """
    sensor_ids = {row[1] for row in rows} if lock_sensors else set()
    try:
        with transaction.atomic():
            if lock_sensors:
                _lock_sensors(sensor_ids)
            _insert_readings(rows=rows, skip_existing=False)
        return
    except psycopg.errors.UniqueViolation:
        pass
    with transaction.atomic():
        if lock_sensors:
            _lock_sensors(sensor_ids)
        _insert_readings(rows=rows, skip_existing=True)


def _lock_sensors(sensor_ids: set[int]) -> None:
    """What the foreign key's per-row check did, once per batch: lock the sensors until commit.

    A sensor deleted since the batch was resolved raises BatchConflict; one
    being deleted now waits for this transaction (and its trigger then deletes
    the readings just stored, see migration 0003).
    """
    table = connection.ops.quote_name(Sensor._meta.db_table)
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    placeholders = ", ".join(["%s"] * len(sensor_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id IN ({placeholders}){lock}) AS s",  # noqa: S608
            list(sensor_ids),
        )
        if cursor.fetchone()[0] != len(sensor_ids):
            raise BatchConflict()


def readings_bulk_insert(
    *, tenant_id: uuid.UUID, rows: Iterable[tuple[int, datetime, float]], chunk_size: int = 50_000
) -> None:
    """Store trusted (sensor_id, aware ts, value) rows in bulk, skipping duplicates (seeding, backfills)."""
    tenant = uuid.UUID(str(tenant_id))
    chunk: list[tuple] = []
    for sensor_id, ts, value in rows:
        chunk.append((tenant, sensor_id, ts, float(value)))
        if len(chunk) >= chunk_size:
            _write_readings(rows=chunk, lock_sensors=False)
            chunk = []
    if chunk:
        _write_readings(rows=chunk, lock_sensors=False)


# The readings table's columns as COPY writes them, and their types for psycopg's binary format.
_COPY_COLUMNS = "(tenant_id, sensor_id, ts, value)"
_COPY_TYPES = ("uuid", "bigint", "timestamptz", "float8")
_STAGING_TABLE = "telemetry_ingest_staging"


def _insert_readings(*, rows: list[tuple], skip_existing: bool) -> None:
    """Store the rows in one statement. With skip_existing, a row already stored (same sensor
    and ts) or repeated is skipped, the first kept; without, on PostgreSQL, it raises UniqueViolation.
    """
    table = connection.ops.quote_name(SensorReading._meta.db_table)
    if connection.vendor == "postgresql":
        if not skip_existing:
            _copy_rows(f"COPY {table} {_COPY_COLUMNS} FROM STDIN (FORMAT BINARY)", rows)
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING_TABLE} "
                "(tenant_id uuid, sensor_id bigint, ts timestamptz, value float8) ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {_STAGING_TABLE}")
        _copy_rows(f"COPY {_STAGING_TABLE} {_COPY_COLUMNS} FROM STDIN (FORMAT BINARY)", rows)
        with connection.cursor() as cursor:
            # A fresh staging table is read in the order it was written: the first of two
            # readings with the same sensor and ts is the one kept.
            cursor.execute(
                f"INSERT INTO {table} {_COPY_COLUMNS} "  # noqa: S608 - names from model meta and a constant
                f"SELECT tenant_id, sensor_id, ts, value FROM {_STAGING_TABLE} "
                "ON CONFLICT (sensor_id, ts, tenant_id) DO NOTHING"
            )
        return
    if connection.vendor == "sqlite":
        # SQLite binds at most 999 values per statement in Django's bulk_create;
        # one JSON parameter unpacked by json_each keeps the batch one statement.
        # Timestamps go in the text form Django stores (naive UTC).
        batch = json.dumps(
            [[sensor_id, str(ts.astimezone(UTC).replace(tzinfo=None)), value] for _, sensor_id, ts, value in rows]
        )
        sql = (
            f"INSERT INTO {table} (tenant_id, sensor_id, ts, value) "  # noqa: S608 - table from model meta
            "SELECT %s, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]') "
            "FROM json_each(%s) AS j WHERE true "  # WHERE: SQLite's upsert needs it after a SELECT
            "ON CONFLICT (sensor_id, ts, tenant_id) DO NOTHING"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [rows[0][0].hex, batch])
        return
    SensorReading.objects.bulk_create(  # pragma: no cover - the project runs on PostgreSQL and SQLite
        [SensorReading(tenant_id=t, sensor_id=s, ts=ts, value=v) for t, s, ts, v in rows],
        ignore_conflicts=True,
    )


def _copy_rows(sql: str, rows: Iterable[tuple]) -> None:
    # Django's cursor: under DEBUG (and in tests) the COPY is logged and counted like any query.
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(_COPY_TYPES)
        write_row = copy.write_row
        for row in rows:
            write_row(row)


# A heartbeat records liveness, so its commit does not wait for the WAL flush
# (synchronous_commit off, for this transaction only): a crash can lose the last
# fraction of a second of heartbeats and corrupts nothing. Ingest keeps durable
# commits: its 202 promises the readings are stored. set_config(..., true) inside
# the INSERT's own (autocommit) transaction costs no round trip; SET LOCAL would
# need BEGIN, SET, INSERT and COMMIT.
_HEARTBEAT_INSERT = (
    "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO telemetry_agentheartbeat (tenant_id, api_key_id, received_at, agent_version, hostname, client_ip) "
    "SELECT %s::uuid, %s::uuid, %s::timestamptz, %s, %s, %s::inet FROM async_commit RETURNING id"
)


def heartbeat_record(*, by: Caller, agent_version: str = "", hostname: str = "") -> AgentHeartbeat:
    """Record that the calling key's agent is alive, with what it says about itself (trimmed to fit).

    On PostgreSQL, outside a transaction, in one statement that commits
    asynchronously (see _HEARTBEAT_INSERT), and the row is built from what was
    written, as Django builds a loaded one (`from_db`); inside a transaction, an
    ordinary insert, so that the caller's transaction keeps its durable commit.
    """
    values = (
        by.tenant_id,
        by.principal.pk,
        timezone.now(),
        _printable(agent_version)[:_AGENT_VERSION_MAX],
        _printable(hostname)[:_HOSTNAME_MAX],
        by.client_ip or None,
    )
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        heartbeat = AgentHeartbeat(**dict(zip(_HEARTBEAT_FIELDS, values, strict=True)))
        heartbeat.save(force_insert=True)
        return heartbeat
    with connection.cursor() as cursor:
        cursor.execute(_HEARTBEAT_INSERT, values)
        heartbeat_id = cursor.fetchone()[0]
    return AgentHeartbeat.from_db(connection.alias, ("id", *_HEARTBEAT_FIELDS), (heartbeat_id, *values))


_HEARTBEAT_FIELDS = ("tenant_id", "api_key_id", "received_at", "agent_version", "hostname", "client_ip")
_AGENT_VERSION_MAX = AgentHeartbeat._meta.get_field("agent_version").max_length
_HOSTNAME_MAX = AgentHeartbeat._meta.get_field("hostname").max_length


def _printable(value: str) -> str:
    return "".join(ch for ch in (value or "") if ch.isprintable()).strip()


DUPLICATE_EXTERNAL_ID = "The tenant already has a machine with external id {external_id!r}."
DUPLICATE_SENSOR_KEY = "The machine already has a sensor with key {key!r}."
SENSOR_GIVEN_TWICE = "{key!r} is given twice."


def machine_create_errors(
    *, tenant_id: uuid.UUID, external_id: str, name: str, location: str = "", sensors: Sequence[tuple[str, str]] = ()
) -> dict[str, list[str]]:
    """What is wrong with a new machine, by field (none: it can be created): the API's and the admin's rule."""
    external_id, name, location = external_id.strip(), name.strip(), location.strip()
    problems: dict[str, list[str]] = {}
    machine = Machine(tenant_id=tenant_id, external_id=external_id, name=name, location=location)
    try:
        machine.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problems.update(exc.message_dict)
    for field, value in (("name", name), ("location", location), ("external_id", external_id)):
        if field not in problems and not storable_text(value):
            problems[field] = [UNSTORABLE]
    if "external_id" not in problems and Machine.objects.for_tenant(tenant_id).filter(external_id=external_id).exists():
        problems["external_id"] = [DUPLICATE_EXTERNAL_ID.format(external_id=external_id)]
    sensor_errors: list[str] = []
    seen: set[str] = set()
    for key, kind in sensors:
        key = key.strip()
        try:
            validate_identifier(key)
        except ValidationError as exc:
            sensor_errors.append(f"{key!r}: {' '.join(exc.messages)}")
        if not storable_text(key):
            sensor_errors.append(f"{key!r}: {UNSTORABLE}")
        if len(key) > Sensor._meta.get_field("key").max_length:
            sensor_errors.append(f"{key[:20]!r}…: a key has at most 100 characters.")
        if kind not in Sensor.Kind.values:
            sensor_errors.append(f"{key!r}: unknown kind {kind!r}; choose one of: {', '.join(Sensor.Kind.values)}.")
        if key in seen:
            sensor_errors.append(SENSOR_GIVEN_TWICE.format(key=key))
        seen.add(key)
    if sensor_errors:
        problems["sensors"] = sensor_errors
    return problems


def _own_machine(by: Caller, machine: Machine) -> None:
    """A machine of another tenant is, to this caller, none at all."""
    if machine.tenant_id != by.tenant_id:
        raise errors.NotFound("No Machine matches the given query.")


@transaction.atomic
def machine_create(
    *,
    by: Caller,
    external_id: str,
    name: str,
    location: str = "",
    sensors: Sequence[tuple[str, str]] = (),
) -> Machine:
    """Create a machine of `by`'s tenant and its sensors ((key, kind) pairs).

    Raises ValidationError naming each problem; Refused for a machine-scoped key
    (the new machine could never be in its scope).
    """
    if machine_scope(by=by) is not None:
        raise errors.Refused(MACHINE_SCOPED_CREATE)
    external_id, name, location = external_id.strip(), name.strip(), location.strip()
    problems = machine_create_errors(
        tenant_id=by.tenant_id, external_id=external_id, name=name, location=location, sensors=sensors
    )
    if problems:
        raise ValidationError(problems)
    machine = Machine(tenant_id=by.tenant_id, external_id=external_id, name=name, location=location)
    machine.save()
    Sensor.objects.bulk_create([Sensor(machine=machine, key=key.strip(), kind=kind) for key, kind in sensors])
    audit_record(
        by=by,
        action="machine.create",
        target=machine,
        changes={
            "external_id": external_id,
            "name": name,
            "location": location,
            "sensors": [f"{key.strip()}:{kind}" for key, kind in sensors],
        },
    )
    return machine


def _check_text(field: str, value: str, errors_by_field: dict[str, list[str]]) -> str:
    value = (value or "").strip()
    model_field = Machine._meta.get_field(field)
    if not value and not model_field.blank:
        errors_by_field[field] = ["This field may not be blank."]
    elif len(value) > model_field.max_length:
        errors_by_field[field] = [f"Ensure this field has no more than {model_field.max_length} characters."]
    elif not storable_text(value):
        errors_by_field[field] = [UNSTORABLE]
    return value


@transaction.atomic
def machine_update(*, by: Caller, machine: Machine, name: str | None = None, location: str | None = None) -> Machine:
    """Rename or relocate a machine. Its external id and tenant never change (agents and readings hang on them)."""
    _own_machine(by, machine)
    errors_by_field: dict[str, list[str]] = {}
    wanted = {}
    if name is not None:
        wanted["name"] = _check_text("name", name, errors_by_field)
    if location is not None:
        wanted["location"] = _check_text("location", location, errors_by_field)
    if errors_by_field:
        raise ValidationError(errors_by_field)
    machine = Machine.objects.select_for_update().get(pk=machine.pk)
    changes = {
        field: [getattr(machine, field), value] for field, value in wanted.items() if getattr(machine, field) != value
    }
    if not changes:
        return machine
    for field, (_, value) in changes.items():
        setattr(machine, field, value)
    machine.save(update_fields=list(changes))
    audit_record(by=by, action="machine.update", target=machine, changes=changes)
    return machine


class ReadingsHeld(errors.Conflict):
    """A machine or sensor whose readings something must keep (a legal hold) cannot be deleted: 409."""


# Apps that must keep readings register a check here (retention's legal holds), so that
# telemetry asks them without importing them: guard(machine=..., sensor=... or None)
# returns why the readings must stay, or None.
deletion_guards: list = []


def deletion_held_reason(*, machine: Machine, sensor: Sensor | None = None) -> str | None:
    """Why the machine's (or sensor's) readings must stay, or None if it may be deleted."""
    for guard in deletion_guards:
        reason = guard(machine=machine, sensor=sensor)
        if reason:
            return reason
    return None


def _check_deletion_guards(*, machine: Machine, sensor: Sensor | None = None) -> None:
    reason = deletion_held_reason(machine=machine, sensor=sensor)
    if reason:
        raise ReadingsHeld(reason)


@dataclass(frozen=True)
class DeletionCounts:
    """What deleting a machine or sensor takes with it."""

    sensors: int
    readings: int


def machine_deletion_counts(*, machines: Iterable[Machine]) -> DeletionCounts:
    ids = [machine.pk for machine in machines]
    return DeletionCounts(
        sensors=Sensor.objects.filter(machine_id__in=ids).count(),
        readings=SensorReading.objects.filter(sensor__machine_id__in=ids).count(),
    )


def sensor_deletion_counts(*, sensors: Iterable[Sensor]) -> DeletionCounts:
    ids = [sensor.pk for sensor in sensors]
    return DeletionCounts(sensors=len(ids), readings=SensorReading.objects.filter(sensor_id__in=ids).count())


@transaction.atomic
def machine_delete(*, by: Caller, machine: Machine) -> DeletionCounts:
    """Delete a machine: gone at once for every reader, its sensors and readings deleted in the background.

    The machine is marked (`deleting_since`): from then on no query of
    `Machine.objects` finds it (lists, ingest, key scopes, holds), and its
    external id is free for a new machine. `machine_purge` then deletes its
    readings, sensors and row, queued once this transaction commits (without a
    broker: at once, in this process); a purge that was never queued (the broker
    down) is done by the periodic sweep (`machines_purge_pending`).
    Raises ReadingsHeld when a legal hold keeps some of its readings.
    """
    _own_machine(by, machine)
    _check_deletion_guards(machine=machine)
    counts = machine_deletion_counts(machines=[machine])
    Machine.objects.filter(pk=machine.pk).update(deleting_since=timezone.now())
    audit_record(
        by=by,
        action="machine.delete",
        target=machine,
        changes={"external_id": machine.external_id, "sensors": counts.sensors, "readings": counts.readings},
    )
    machine_id = machine.pk
    transaction.on_commit(lambda: _purge_later(machine_id))
    return counts


def _purge_later(machine_id: uuid.UUID) -> None:
    from telemetry.tasks import machine_purge_enqueue  # the task wraps the service below

    machine_purge_enqueue(machine_id=machine_id)


def machine_purge(*, machine_id: uuid.UUID) -> bool:
    """Delete a machine marked for deletion with its sensors and their readings (DELETE statements;
    no reading is loaded). False if there is nothing (or, for now, nothing allowed) to delete.

    A legal hold placed on its readings after the machine was marked keeps them
    (and the marked machine) until it is released: the next sweep tries again.
    """
    machine = Machine.all_objects.filter(pk=machine_id, deleting_since__isnull=False).first()
    if machine is None:
        return False
    if deletion_held_reason(machine=machine):
        logger.warning("machine %s is marked for deletion but a hold keeps its readings; kept for now", machine_id)
        return False
    with transaction.atomic():
        # Readings first, by sensor: a plain DELETE, so none is loaded (Django's collector would fast-delete too).
        SensorReading.objects.filter(sensor__machine_id=machine.pk).delete()
        Machine.all_objects.filter(pk=machine.pk).delete()
    return True


def machines_purge_pending(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Purge every machine marked for deletion more than `older_than` ago (a purge lost with its message)."""
    pending = Machine.all_objects.filter(deleting_since__lt=timezone.now() - older_than).values_list("pk", flat=True)
    return sum(machine_purge(machine_id=machine_id) for machine_id in list(pending))


@transaction.atomic
def sensor_create(*, by: Caller, machine: Machine, key: str, kind: str) -> Sensor:
    _own_machine(by, machine)
    key = (key or "").strip()
    errors_by_field: dict[str, list[str]] = {}
    try:
        validate_identifier(key)
    except ValidationError as exc:
        errors_by_field["key"] = list(exc.messages)
    if "key" not in errors_by_field and not storable_text(key):
        errors_by_field["key"] = [UNSTORABLE]
    if "key" not in errors_by_field and len(key) > Sensor._meta.get_field("key").max_length:
        errors_by_field["key"] = ["Ensure this field has no more than 100 characters."]
    if kind not in Sensor.Kind.values:
        errors_by_field["kind"] = [f"Unknown kind {kind!r}; choose one of: {', '.join(Sensor.Kind.values)}."]
    if "key" not in errors_by_field and Sensor.objects.filter(machine_id=machine.pk, key=key).exists():
        errors_by_field["key"] = [DUPLICATE_SENSOR_KEY.format(key=key)]
    if errors_by_field:
        raise ValidationError(errors_by_field)
    try:
        with transaction.atomic():
            sensor = Sensor.objects.create(machine=machine, key=key, kind=kind)
    except IntegrityError:  # the same key added at the same moment
        raise ValidationError({"key": [DUPLICATE_SENSOR_KEY.format(key=key)]}) from None
    audit_record(
        by=by,
        action="sensor.create",
        target=sensor,
        changes={"machine": machine.external_id, "key": key, "kind": kind},
    )
    return sensor


@transaction.atomic
def sensor_delete(*, by: Caller, sensor: Sensor) -> DeletionCounts:
    """Delete a sensor and its readings (DELETE statements; no reading is loaded).

    Raises ReadingsHeld when a legal hold keeps some of its readings.
    """
    machine = sensor.machine
    _own_machine(by, machine)
    _check_deletion_guards(machine=machine, sensor=sensor)
    counts = sensor_deletion_counts(sensors=[sensor])
    SensorReading.objects.filter(sensor_id=sensor.pk).delete()
    audit_record(
        by=by,
        action="sensor.delete",
        target=sensor,
        changes={"machine": machine.external_id, "key": sensor.key, "readings": counts.readings},
    )
    Sensor.objects.filter(pk=sensor.pk).delete()
    return counts

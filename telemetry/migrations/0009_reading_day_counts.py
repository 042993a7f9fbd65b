"""Readings per tenant and UTC day, kept by statement triggers on the readings table (PostgreSQL).

A maintenance drop records how many rows of each tenant it dropped; counting
them under its locks was the one part of a drop that grew with the partition
(docs/notes/scale.md). The triggers see every write of the parent table
(ingest's COPY and INSERT, retention's and a sensor's DELETE, raw SQL) through
its transition tables, one grouped upsert per statement; each connection adds
to its own slot, so that concurrent ingests of one tenant do not queue on one
row. Existing rows are counted once here. SQLite has no partitions to drop and
no triggers here.
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRES_CREATE = """
CREATE FUNCTION telemetry_reading_day_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        INSERT INTO telemetry_readingdaycount AS c (tenant_id, day, slot, rows)
        SELECT tenant_id, (ts AT TIME ZONE 'UTC')::date, pg_backend_pid() % 16, count(*)
        FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (tenant_id, day, slot) DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
        INSERT INTO telemetry_readingdaycount AS c (tenant_id, day, slot, rows)
        SELECT tenant_id, (ts AT TIME ZONE 'UTC')::date, pg_backend_pid() % 16, -count(*)
        FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (tenant_id, day, slot) DO UPDATE SET rows = c.rows + EXCLUDED.rows;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER telemetry_reading_day_counts_insert AFTER INSERT ON telemetry_sensorreading
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_reading_day_counts();
CREATE TRIGGER telemetry_reading_day_counts_delete AFTER DELETE ON telemetry_sensorreading
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_reading_day_counts();
CREATE TRIGGER telemetry_reading_day_counts_update AFTER UPDATE ON telemetry_sensorreading
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_reading_day_counts();
INSERT INTO telemetry_readingdaycount (tenant_id, day, slot, rows)
    SELECT tenant_id, (ts AT TIME ZONE 'UTC')::date, 0, count(*) FROM telemetry_sensorreading GROUP BY 1, 2;
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS telemetry_reading_day_counts_insert ON telemetry_sensorreading;
DROP TRIGGER IF EXISTS telemetry_reading_day_counts_delete ON telemetry_sensorreading;
DROP TRIGGER IF EXISTS telemetry_reading_day_counts_update ON telemetry_sensorreading;
DROP FUNCTION IF EXISTS telemetry_reading_day_counts();
"""


def _run(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0008_machine_deleting_in_background"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReadingDayCount",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "tenant", "day", "slot", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("day", models.DateField()),
                ("slot", models.SmallIntegerField()),
                ("rows", models.BigIntegerField()),
                (
                    "tenant",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
        ),
        migrations.RunPython(_run(POSTGRES_CREATE), _run(POSTGRES_DROP)),
    ]

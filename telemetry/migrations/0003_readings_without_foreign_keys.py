"""The readings table loses its foreign keys; a trigger deletes a sensor's readings with it.

A foreign key costs a trigger call and an index probe per inserted row, which
capped ingest's COPY near a third of its speed (bench/bench_hotpaths.py). Ingest
resolves and locks the batch's sensors itself (telemetry.services), the ORM
still cascades deletes, and the trigger covers every other delete of a sensor
(raw SQL, and readings committed by an ingest that held the sensor's lock
while the ORM's cascade ran). A machine or tenant delete reaches the readings
through its sensors.

On SQLite, rebuilding telemetry_sensor (a later AlterField there) drops the
trigger: such a migration must create it again (the orphan tests would fail).
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRES_CREATE = """
CREATE FUNCTION telemetry_sensor_delete_readings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM telemetry_sensorreading AS r USING deleted_sensors AS d WHERE r.sensor_id = d.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER telemetry_sensor_delete_readings AFTER DELETE ON telemetry_sensor
    REFERENCING OLD TABLE AS deleted_sensors
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_sensor_delete_readings();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS telemetry_sensor_delete_readings ON telemetry_sensor;
DROP FUNCTION IF EXISTS telemetry_sensor_delete_readings();
"""
SQLITE_CREATE = """
CREATE TRIGGER telemetry_sensor_delete_readings AFTER DELETE ON telemetry_sensor
BEGIN
    DELETE FROM telemetry_sensorreading WHERE sensor_id = OLD.id;
END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS telemetry_sensor_delete_readings;"


def _run(statements: dict[str, str]):
    def run(apps, schema_editor):
        sql = statements.get(schema_editor.connection.vendor)
        if sql:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0002_rollups"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sensorreading",
            name="sensor",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="readings",
                to="telemetry.sensor",
            ),
        ),
        migrations.AlterField(
            model_name="sensorreading",
            name="tenant",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="tenants.tenant",
            ),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_CREATE, "sqlite": SQLITE_CREATE}),
            _run({"postgresql": POSTGRES_DROP, "sqlite": SQLITE_DROP}),
        ),
    ]

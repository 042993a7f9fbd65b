"""The readings' unique key gains the tenant: UNIQUE (sensor_id, ts, tenant_id).

A sensor belongs to one tenant and every stored reading carries its sensor's tenant,
so the new key refuses exactly what the old one did (no stored row can conflict), and
ingest's ON CONFLICT target becomes (sensor_id, ts, tenant_id) in the same release.
The tenant goes last so every read keeps its (sensor_id, ts) prefix (the same plans);
a table distributed by tenant needs the tenant in the key, in any position.
The new key is built before the old one goes, in one transaction. On PostgreSQL the
parent's ALTER builds one index per partition and blocks writes while it does
(measured in docs/notes/scale.md). On SQLite Django rebuilds the readings table, which
the sensors' delete trigger of migration 0003 names: it is dropped first and made again.
"""

from django.db import migrations, models

SQLITE_TRIGGER = """
CREATE TRIGGER telemetry_sensor_delete_readings AFTER DELETE ON telemetry_sensor
BEGIN
    DELETE FROM telemetry_sensorreading WHERE sensor_id = OLD.id;
END;
"""


def _sqlite(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(sql)

    return run


DROP_TRIGGER = _sqlite("DROP TRIGGER IF EXISTS telemetry_sensor_delete_readings;")
CREATE_TRIGGER = _sqlite(SQLITE_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0006_rollup_cursor_writers"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(DROP_TRIGGER, CREATE_TRIGGER),
        migrations.AddConstraint(
            model_name="sensorreading",
            constraint=models.UniqueConstraint(
                fields=("sensor", "ts", "tenant"), name="telemetry_reading_sensor_ts_tenant_unique"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="sensorreading",
            name="telemetry_reading_sensor_ts_unique",
        ),
        migrations.RunPython(CREATE_TRIGGER, DROP_TRIGGER),
    ]

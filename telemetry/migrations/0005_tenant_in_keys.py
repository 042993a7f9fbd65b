"""PostgreSQL: the tenant in the primary key of rollups and heartbeats, as in readings'.

Ready for a distributed engine sharding these tables by tenant (Citus requires the
distribution column in every primary key and unique constraint; docs/notes/scale.md).
Django's model state keeps `id` as the single-column key (the ORM and the admin use
it); `id` stays unique by itself, from its identity sequence. SQLite: nothing changes.
"""

from django.db import migrations

TABLES = ("telemetry_sensorrollup", "telemetry_agentheartbeat")


def _set_key(schema_editor, columns: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey"')
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({columns})')


def forwards(apps, schema_editor):
    _set_key(schema_editor, "id, tenant_id")


def backwards(apps, schema_editor):
    _set_key(schema_editor, "id")


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0004_partition_readings")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]

"""Seed one fuzzing identity (run by fuzz_http.py with `manage.py shell`): prints it as JSON.

A fresh tenant each time, so one run cannot spend another's identity: an
enterprise tier (the highest rate caps), an admin, a second admin the run may
change freely, a machine with a sensor of each kind and a week of readings, and
an API key with every scope.
"""

import json
import secrets
from datetime import timedelta

from django.utils import timezone

from apikeys.services import api_key_create
from core.caller import Caller
from telemetry.services import machine_create, readings_bulk_insert
from tenants.services import tenant_create
from users.services import user_create

tag = secrets.token_hex(4)
tenant = tenant_create(name=f"Fuzz {tag}", tier="enterprise")
password = "Fuzz-" + secrets.token_urlsafe(24)
by = Caller.system(tenant_id=tenant.pk)
admin = user_create(by=by, email=f"fuzz-admin-{tag}@fuzz.test", password=password, role="admin")
user_create(by=by, email=f"fuzz-admin2-{tag}@fuzz.test", password=password, role="admin")
kinds = ["temperature", "pressure", "vibration", "current", "speed", "other"]
machine = machine_create(
    by=Caller.system(tenant_id=tenant.pk),
    external_id="fuzz-press",
    name="Fuzz press",
    sensors=[(f"s-{kind}", kind) for kind in kinds],
)
now = timezone.now()
rows = [
    (sensor.pk, now - timedelta(minutes=10 * i), 1.0 + i % 7) for sensor in machine.sensors.all() for i in range(50)
]
readings_bulk_insert(tenant_id=tenant.id, rows=rows)
key = api_key_create(
    by=Caller.system(tenant_id=tenant.id),
    name="fuzz key",
    scopes_requested=["ingest", "agent", "read:machines", "read:sensors"],
)
print(
    "FUZZ-IDENTITY "
    + json.dumps(
        {
            "tenant_id": str(tenant.id),
            "email": admin.email,
            "password": password,
            "user_id": str(admin.id),
            "key": key.secret,
            "key_id": str(key.api_key.id),
            "machine_id": str(machine.id),
        }
    )
)

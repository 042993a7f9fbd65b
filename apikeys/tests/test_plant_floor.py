"""Keys that fit a plant floor, over HTTP: machine scope, network allowlists, observed IPs, rate limits."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apikeys.models import ApiKey, ObservedIp
from audit.models import AuditEvent
from haltless.testing import add_sensors, client_for_key
from telemetry.models import SensorReading
from telemetry.tests.factories import MachineFactory

URL = "/api/v1/settings/api-keys"
INGEST = "/api/v1/ingest"
HEARTBEAT = "/api/v1/agent/heartbeat"
MACHINES = "/api/v1/machines"


def detail(api_key) -> str:
    return f"{URL}/{api_key.pk}"


def reading(machine="m1", sensor="bearing_temp", minutes_ago=1, value=21.5):
    ts = (timezone.now() - timedelta(minutes=minutes_ago)).isoformat()
    return {"machine": machine, "sensor": sensor, "ts": ts, "value": value}


@pytest.fixture
def machine(tenant):
    machine = MachineFactory(tenant=tenant, external_id="m1", name="Press 1")
    add_sensors(machine)
    return machine


@pytest.fixture
def line3(tenant):
    machine = MachineFactory(tenant=tenant, external_id="line3-press", name="Line 3 press")
    add_sensors(machine)
    return machine


@pytest.fixture
def line4(tenant):
    machine = MachineFactory(tenant=tenant, external_id="line4-press", name="Line 4 press")
    add_sensors(machine)
    return machine


@pytest.fixture
def theirs(other_tenant):
    machine = MachineFactory(tenant=other_tenant, external_id="their-press", name="Their press")
    add_sensors(machine)
    return machine


def create(admin_client, **body):
    return admin_client.post(URL, {"name": "gateway line 3", "scopes": ["ingest", "agent", "read_only"], **body})


# --- Machine-scoped keys -------------------------------------------------------------------


class TestMachinesField:
    def test_create_stores_ids_and_answers_external_ids(self, admin_client, line3, line4):
        response = create(admin_client, machines=["line3-press"])
        assert response.status_code == 201, response.content
        assert response.json()["machines"] == ["line3-press"]
        api_key = ApiKey.objects.get()
        assert api_key.machine_ids == [str(line3.pk)]
        assert admin_client.get(detail(api_key)).json()["machines"] == ["line3-press"]
        assert admin_client.get(URL).json()[0]["machines"] == ["line3-press"]

    def test_null_means_every_machine(self, admin_client, line3):
        response = create(admin_client, machines=None)
        assert response.status_code == 201
        assert response.json()["machines"] is None

    @pytest.mark.parametrize(
        ("machines", "message"),
        [
            ([], "Give at least one machine, or null for every machine of the tenant."),
            (["nope"], "Unknown machine: 'nope'."),
            (["line3-press", "their-press"], "Unknown machine: 'their-press'."),
            ("line3-press", "Expected null (every machine) or a list of machine external ids."),
        ],
    )
    def test_bad_machines_are_a_400_naming_the_field(self, admin_client, line3, theirs, machines, message):
        response = create(admin_client, machines=machines)
        assert response.status_code == 400
        assert response.json() == {"machines": [message]}
        assert not ApiKey.objects.exists()

    def test_patch_sets_and_clears_the_scope(self, admin_client, line3, line4, api_key):
        response = admin_client.patch(detail(api_key.api_key), {"machines": ["line4-press", "line3-press"]})
        assert response.status_code == 200, response.content
        assert response.json()["machines"] == ["line4-press", "line3-press"]
        event = AuditEvent.objects.get(action="api_key.update")
        assert event.changes["machine_ids"] == [None, [str(line4.pk), str(line3.pk)]]
        response = admin_client.patch(detail(api_key.api_key), {"machines": None})
        assert response.json()["machines"] is None
        assert admin_client.patch(detail(api_key.api_key), {"machines": []}).status_code == 400

    def test_a_machine_recreated_under_the_same_external_id_is_not_in_scope(self, tenant, make_api_key, line3):
        issued = make_api_key(scopes=["ingest", "read:machines"])
        issued.api_key.machine_ids = [str(line3.pk)]
        issued.api_key.save()
        line3.delete()
        again = MachineFactory(tenant=tenant, external_id="line3-press")
        add_sensors(again)
        client = client_for_key(issued.secret)
        assert client.get(f"{MACHINES}/{again.pk}").status_code == 404
        assert client.post(INGEST, {"readings": [reading("line3-press")]}).status_code == 400


@pytest.fixture
def scoped_key(make_api_key, line3):
    issued = make_api_key(scopes=["ingest", "agent", "read:machines", "read:sensors"], name="line 3")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(machine_ids=[str(line3.pk)])
    return issued


@pytest.fixture
def scoped_client(scoped_key):
    return client_for_key(scoped_key.secret)


class TestMachineScopeEnforced:
    def test_ingest_for_an_out_of_scope_machine_answers_as_for_an_unknown_one(self, scoped_client, line3, line4):
        out_of_scope = scoped_client.post(INGEST, {"readings": [reading("line3-press"), reading("line4-press")]})
        unknown = scoped_client.post(
            INGEST, {"readings": [reading("line3-press"), reading("line4-press", minutes_ago=2)]}
        )
        nowhere = scoped_client.post(INGEST, {"readings": [reading("line3-press"), reading("no-such-press")]})
        assert out_of_scope.status_code == unknown.status_code == nowhere.status_code == 400
        assert out_of_scope.json() == {"readings": {"1": {"machine": ["Unknown machine 'line4-press'."]}}}
        assert nowhere.json() == {"readings": {"1": {"machine": ["Unknown machine 'no-such-press'."]}}}
        assert not SensorReading.objects.exists()

    def test_ingest_for_the_scoped_machine_is_accepted(self, scoped_client, line3):
        response = scoped_client.post(INGEST, {"readings": [reading("line3-press")]})
        assert response.status_code == 202
        assert SensorReading.objects.count() == 1

    def test_machine_list_shows_only_the_scope(self, scoped_client, line3, line4):
        body = scoped_client.get(MACHINES).json()
        assert body["count"] == 1
        assert [m["external_id"] for m in body["results"]] == ["line3-press"]

    def test_other_machines_are_not_found_exactly_like_missing_ones(self, scoped_client, line3, line4):
        assert scoped_client.get(f"{MACHINES}/{line3.pk}").status_code == 200
        out_of_scope = scoped_client.get(f"{MACHINES}/{line4.pk}")
        missing = scoped_client.get(f"{MACHINES}/00000000-0000-0000-0000-000000000000")
        assert out_of_scope.status_code == missing.status_code == 404
        assert out_of_scope.json() == missing.json()

    @pytest.mark.parametrize("path", ["readings", "latest", "aggregate"])
    @pytest.mark.parametrize("ref", ["external_id", "pk"])
    def test_every_sensor_data_endpoint_404s_outside_the_scope(self, scoped_client, line3, line4, path, ref):
        query = {"machine": str(getattr(line4, ref))}
        if path == "aggregate":
            query.update(sensor="bearing_temp", bucket="1h")
        response = scoped_client.get(f"/api/v1/sensor-data/{path}", query)
        assert response.status_code == 404
        missing = scoped_client.get(f"/api/v1/sensor-data/{path}", {**query, "machine": "no-such-press"})
        assert response.json()["detail"] == missing.json()["detail"].replace("no-such-press", query["machine"])
        query["machine"] = str(getattr(line3, ref))
        assert scoped_client.get(f"/api/v1/sensor-data/{path}", query).status_code == 200

    def test_users_still_see_every_machine(self, viewer_client, scoped_key, line3, line4):
        assert viewer_client.get(MACHINES).json()["count"] == 2


# --- Network allowlists ------------------------------------------------------------------


class TestAllowedCidrsField:
    def test_normalised_and_de_duplicated(self, admin_client):
        response = create(
            admin_client,
            allowed_cidrs=["10.20.0.0/16", "192.0.2.7", "2001:DB8::/32", "10.20.0.0/16", "2001:db8::1"],
        )
        assert response.status_code == 201, response.content
        assert response.json()["allowed_cidrs"] == ["10.20.0.0/16", "192.0.2.7/32", "2001:db8::/32", "2001:db8::1/128"]

    @pytest.mark.parametrize(
        ("cidrs", "message"),
        [
            (["10.0.0.1/8"], "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"),
            (["300.1.1.1/32"], "'300.1.1.1/32' is not an IPv4 or IPv6 address or network."),
            (["::/129"], "'::/129' is not an IPv4 or IPv6 address or network."),
            ([f"10.0.{n}.0/24" for n in range(51)], "At most 50 networks."),
            (["eth0"], "'eth0' is not an IPv4 or IPv6 address or network."),
            ("10.0.0.0/8", 'Expected a list of networks, e.g. ["10.20.0.0/16", "2001:db8::/48"].'),
        ],
    )
    def test_bad_cidrs_are_a_400_naming_the_field(self, admin_client, api_key, cidrs, message):
        response = create(admin_client, allowed_cidrs=cidrs)
        assert response.status_code == 400
        assert response.json() == {"allowed_cidrs": [message]}
        patched = admin_client.patch(detail(api_key.api_key), {"allowed_cidrs": cidrs})
        assert patched.status_code == 400
        assert patched.json() == {"allowed_cidrs": [message]}
        assert ApiKey.objects.get(pk=api_key.api_key.pk).allowed_cidrs == []

    def test_fifty_distinct_networks_are_fine_and_duplicates_do_not_count(self, admin_client):
        cidrs = [f"10.0.{n}.0/24" for n in range(50)]
        assert create(admin_client, allowed_cidrs=cidrs + cidrs[:5]).status_code == 201


@pytest.fixture
def fenced_key(make_api_key):
    issued = make_api_key(scopes=["ingest", "agent"], name="fenced")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(allowed_cidrs=["10.20.0.0/16", "2001:db8:5::/48"])
    return issued


class TestAllowlistEnforced:
    @pytest.mark.parametrize("address", ["10.20.3.4", "2001:db8:5::17", "::ffff:10.20.9.9"])
    def test_inside_the_allowlist_is_let_through(self, fenced_key, address):
        response = client_for_key(fenced_key.secret).get(HEARTBEAT, REMOTE_ADDR=address)
        assert response.status_code == 200

    @pytest.mark.parametrize("address", ["10.21.0.1", "2001:db8:6::1", "::ffff:10.21.0.1", "127.0.0.1"])
    def test_outside_is_a_403_with_the_exact_text(self, fenced_key, address):
        response = client_for_key(fenced_key.secret).get(HEARTBEAT, REMOTE_ADDR=address)
        assert response.status_code == 403
        assert response.json() == {"detail": f"API key is not allowed from {address}."}

    def test_a_denied_use_is_not_a_use(self, fenced_key):
        client_for_key(fenced_key.secret).get(HEARTBEAT, REMOTE_ADDR="10.99.0.1")
        api_key = ApiKey.objects.get(pk=fenced_key.api_key.pk)
        assert api_key.last_used_at is None
        assert not ObservedIp.objects.exists()

    def test_the_allowlist_comes_before_scope_and_rate_limit(self, fenced_key):
        ApiKey.objects.filter(pk=fenced_key.api_key.pk).update(requests_per_minute=1)
        client = client_for_key(fenced_key.secret)
        # Outside: 403 for the address although the key lacks read:machines and is at its limit.
        for _ in range(3):
            response = client.get(MACHINES, REMOTE_ADDR="10.99.0.1")
            assert response.json() == {"detail": "API key is not allowed from 10.99.0.1."}
        # Nothing was counted: the first use from inside gets to the scope check.
        response = client.get(MACHINES, REMOTE_ADDR="10.20.0.1")
        assert response.json() == {"detail": "API key does not have the required scope: read:machines"}

    def test_denied_uses_are_audited_at_most_once_a_minute_per_key(self, fenced_key, make_api_key):
        client = client_for_key(fenced_key.secret)
        for _ in range(5):
            assert client.get(HEARTBEAT, REMOTE_ADDR="198.51.100.9").status_code == 403
        events = AuditEvent.objects.filter(action="api_key.ip_denied")
        assert events.count() == 1
        event = events.get()
        assert event.target_id == str(fenced_key.api_key.pk)
        assert event.client_ip == "198.51.100.9"
        assert event.changes == {"ip": "198.51.100.9", "allowed_cidrs": ["10.20.0.0/16", "2001:db8:5::/48"]}
        other = make_api_key(name="other fenced")
        ApiKey.objects.filter(pk=other.api_key.pk).update(allowed_cidrs=["10.20.0.0/16"])
        client_for_key(other.secret).get(HEARTBEAT, REMOTE_ADDR="198.51.100.9")
        assert events.count() == 2

    def test_denied_uses_send_a_sampled_ip_denied_webhook(self, fenced_key, tenant):
        from webhooks.models import WebhookDelivery, WebhookEndpoint

        WebhookEndpoint.objects.create(tenant=tenant, url="https://hooks.example.com/haltless", secret_encrypted="x")
        client = client_for_key(fenced_key.secret)
        for _ in range(3):
            client.get(HEARTBEAT, REMOTE_ADDR="198.51.100.9")
        delivery = WebhookDelivery.objects.get()
        assert delivery.type == "api_key.ip_denied"
        assert delivery.payload["data"] == {
            "key_id": str(fenced_key.api_key.pk),
            "name": "fenced",
            "prefix": fenced_key.api_key.prefix,
            "ip": "198.51.100.9",
            "allowed_cidrs": ["10.20.0.0/16", "2001:db8:5::/48"],
        }

    def test_a_spoofed_forwarded_for_never_helps_without_trusted_proxies(self, fenced_key):
        response = client_for_key(fenced_key.secret).get(
            HEARTBEAT, REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="10.20.0.5"
        )
        assert response.status_code == 403
        assert response.json() == {"detail": "API key is not allowed from 198.51.100.9."}

    @override_settings(TRUSTED_PROXIES=["127.0.0.0/8"])
    def test_a_trusted_proxy_reports_the_client(self, fenced_key):
        client = client_for_key(fenced_key.secret)
        # The proxy appended the client's address; what the client wrote before it does not count.
        ok = client.get(HEARTBEAT, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.1, 10.20.0.5")
        assert ok.status_code == 200
        spoofed = client.get(HEARTBEAT, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.20.0.5, 203.0.113.1")
        assert spoofed.json() == {"detail": "API key is not allowed from 203.0.113.1."}
        # A peer that is not a trusted proxy is the client, whatever it forwards.
        direct = client.get(HEARTBEAT, REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="10.20.0.5")
        assert direct.json() == {"detail": "API key is not allowed from 198.51.100.9."}


# --- Observed IPs ------------------------------------------------------------------------


class TestObservedIps:
    def test_lists_allowed_uses_grouped_with_counts(self, admin_client, api_key):
        client = client_for_key(api_key.secret)
        for address in ["10.0.0.5", "10.0.0.5", "2001:db8:1:2::10", "2001:db8:1:2::99", "::ffff:10.0.0.5"]:
            assert client.get(HEARTBEAT, REMOTE_ADDR=address).status_code == 200
        response = admin_client.get(f"{detail(api_key.api_key)}/observed-ips")
        assert response.status_code == 200
        body = {item["ip"]: item for item in response.json()}
        assert set(body) == {"10.0.0.5", "2001:db8:1:2::/64"}
        assert body["10.0.0.5"]["requests"] == 3
        assert body["2001:db8:1:2::/64"]["requests"] == 2
        assert set(body["10.0.0.5"]) == {"ip", "first_seen", "last_seen", "requests"}

    def test_no_database_write_per_request(self, api_key, django_assert_num_queries):
        client = client_for_key(api_key.secret)
        client.get(HEARTBEAT, REMOTE_ADDR="10.0.0.1")  # the first use writes last_used_at
        # Authentication's lookup and the heartbeat row: nothing for observed addresses.
        with django_assert_num_queries(2):
            client.get(HEARTBEAT, REMOTE_ADDR="10.0.0.2")
        assert not ObservedIp.objects.exists()

    def test_at_most_100_per_key(self, admin_client, api_key):
        client = client_for_key(api_key.secret)
        for n in range(105):
            client.get(HEARTBEAT, REMOTE_ADDR=f"10.1.{n // 250}.{n % 250 + 1}")
        assert len(admin_client.get(f"{detail(api_key.api_key)}/observed-ips").json()) == 100

    def test_older_than_30_days_is_not_listed(self, admin_client, api_key):
        now = timezone.now()
        ObservedIp.objects.create(
            api_key=api_key.api_key, network="10.9.9.9", first_seen=now - timedelta(days=40),
            last_seen=now - timedelta(days=31), requests=4,
        )  # fmt: skip
        assert admin_client.get(f"{detail(api_key.api_key)}/observed-ips").json() == []

    def test_another_tenants_key_is_not_found(self, other_tenant_admin_client, api_key):
        assert other_tenant_admin_client.get(f"{detail(api_key.api_key)}/observed-ips").status_code == 404


# --- Rate limits --------------------------------------------------------------------------


NOT_A_COUNT = "requests_per_minute: must be a whole number of at least 1, or null for the tier's cap."


class TestRateLimitField:
    def test_create_and_patch(self, admin_client, api_key):
        response = create(admin_client, rate_limit={"requests_per_minute": 120, "readings_per_minute": None})
        assert response.status_code == 201
        assert response.json()["rate_limit"] == {"requests_per_minute": 120, "readings_per_minute": None}
        patched = admin_client.patch(detail(api_key.api_key), {"rate_limit": {"readings_per_minute": 5000}})
        assert patched.status_code == 200
        assert patched.json()["rate_limit"] == {"requests_per_minute": None, "readings_per_minute": 5000}

    @pytest.mark.parametrize(
        ("rate_limit", "message"),
        [
            ({"requests_per_minute": 12_001}, "requests_per_minute: at most 12,000 on the professional tier."),
            ({"readings_per_minute": 2_000_001}, "readings_per_minute: at most 2,000,000 on the professional tier."),
            ({"requests_per_minute": 0}, NOT_A_COUNT),
            ({"requests_per_minute": "10"}, NOT_A_COUNT),
            ({"per_hour": 10}, "'per_hour' is not a rate limit; use requests_per_minute or readings_per_minute."),
        ],
    )  # fmt: skip
    def test_bad_values_are_a_400(self, admin_client, rate_limit, message):
        response = create(admin_client, rate_limit=rate_limit)
        assert response.status_code == 400
        assert response.json() == {"rate_limit": [message]}


@pytest.fixture
def limited_key(make_api_key, tenant):
    issued = make_api_key(scopes=["ingest", "agent"], name="limited")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(requests_per_minute=3, readings_per_minute=10)
    return issued


class TestRateLimitEnforced:
    def test_past_requests_per_minute_is_a_429_with_retry_after(self, limited_key):
        client = client_for_key(limited_key.secret)
        answers = [client.get(HEARTBEAT) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[3].json() == {"detail": "API key rate limit exceeded: 3 requests per minute."}
        assert 1 <= int(answers[3]["Retry-After"]) <= 60
        assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a["RateLimit-Limit"] == "3" for a in answers)
        assert all(0 <= int(a["RateLimit-Reset"]) <= 60 for a in answers)
        assert answers[2].json()["backoff_seconds"] > 0
        assert answers[0].json()["limits"] == {"requests_per_minute": 3, "readings_per_minute": 10}

    def test_headers_also_on_errors_of_a_limited_key(self, limited_key):
        response = client_for_key(limited_key.secret).get(MACHINES)
        assert response.status_code == 403
        assert response["RateLimit-Limit"] == "3"

    def test_no_headers_without_a_limit(self, key_client):
        assert "RateLimit-Limit" not in key_client.get(HEARTBEAT)

    def test_readings_past_the_limit_are_a_429_and_nothing_is_stored(self, limited_key, machine):
        client = client_for_key(limited_key.secret)
        first = client.post(INGEST, {"readings": [reading(minutes_ago=n + 1) for n in range(8)]})
        assert first.status_code == 202
        second = client.post(INGEST, {"readings": [reading(minutes_ago=n + 20) for n in range(3)]})
        assert second.status_code == 429
        assert second.json() == {"detail": "API key rate limit exceeded: 10 readings per minute."}
        assert int(second["Retry-After"]) >= 1
        assert SensorReading.objects.count() == 8

    def test_a_refused_batch_is_not_counted(self, limited_key, machine):
        client = client_for_key(limited_key.secret)
        bad = client.post(INGEST, {"readings": [reading(minutes_ago=n + 1) for n in range(7)] + [reading("nope")]})
        assert bad.status_code == 400
        assert client.post(INGEST, {"readings": [reading(minutes_ago=n + 1) for n in range(10)]}).status_code == 202

    def test_a_batch_bigger_than_readings_per_minute_is_a_400(self, limited_key, machine):
        response = client_for_key(limited_key.secret).post(
            INGEST, {"readings": [reading(minutes_ago=n + 1) for n in range(11)]}
        )
        assert response.status_code == 400
        assert response.json() == {
            "readings": ["A batch may hold at most 10 readings for this key (its readings_per_minute)."]
        }

    def test_the_tier_cap_applies_to_all_of_a_tenants_keys_together(self, make_api_key, tenant, settings):
        settings.HALTLESS_TIER_RATE_CAPS = {
            **settings.HALTLESS_TIER_RATE_CAPS,
            "professional": {"requests_per_minute": 4, "readings_per_minute": 100},
        }
        first, second = (client_for_key(make_api_key(name=f"k{n}").secret) for n in range(2))
        answers = [client.get(HEARTBEAT).status_code for client in (first, second, first, second, first)]
        assert answers == [200, 200, 200, 200, 429]


@pytest.mark.parametrize("name", ["press\x00-7", "press-\ud800"])
def test_a_machine_name_the_database_cannot_hold_is_unknown_not_a_500(admin_client, name):
    # Found by the schema fuzzing on PostgreSQL, which refuses NUL in text.
    import json

    body = json.dumps({"name": "k", "machines": [name]})  # ASCII escapes: a lone surrogate travels as \\ud800
    answer = admin_client.generic("POST", "/api/v1/settings/api-keys", body, content_type="application/json")
    assert answer.status_code == 400
    assert list(answer.json()) == ["machines"]

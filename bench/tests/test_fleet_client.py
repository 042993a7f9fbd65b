"""The keep-alive load generator: loopback only, and the batches it sends are valid ingest bodies."""

import json
from datetime import UTC, datetime

from bench import fleet_client
from telemetry.services import TypedReadings, ingest_body_decode


def test_a_base_url_off_loopback_is_refused_before_any_connection(tmp_path):
    spec, out = tmp_path / "spec.json", tmp_path / "out.json"
    spec.write_text(json.dumps({"mode": "closed", "base": "http://192.0.2.1:8000", "requests": [], "seconds": 1}))
    assert fleet_client.main([str(spec), str(out)]) == 2
    assert not out.exists()


def test_an_agents_batches_are_well_typed_and_never_repeat_a_timestamp():
    agent = {"machine": "fleet-001", "sensors": ["a", "b", "c", "d", "e"]}
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    first, second = (fleet_client.ingest_body(agent, n, 100, origin) for n in (0, 1))
    decoded = [ingest_body_decode(body.encode())["readings"] for body in (first, second)]
    assert all(type(readings) is TypedReadings and len(readings) == 100 for readings in decoded)
    stamps = [(r.sensor, r.ts) for readings in decoded for r in readings]
    assert len(set(stamps)) == 200


def test_figures_give_counts_errors_and_percentiles():
    recorder = fleet_client.Recorder()
    for n in range(100):
        recorder.latencies.setdefault("x", []).append(float(n))
    recorder.errors["x"] = 1
    figures = fleet_client.Recorder.figures(recorder, seconds=10)["endpoints"]["x"]
    assert figures == {"count": 100, "errors": 1, "rps": 10.0, "p50_ms": 49.0, "p99_ms": 98.0}

"""Locust users for bench/bench_load.py, which runs locust headless in a process of its own.

Never imported by Django. Reads the agents (API keys, machines, sensors) from
the JSON file named by BENCH_LOAD_FIXTURE and writes per-endpoint figures
(count, errors, exact p50/p99 from every sample) to BENCH_LOAD_RESULT.
"""

import itertools
import json
import os
import random
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from locust import FastHttpUser, constant, events, task

HEARTBEAT = "GET /api/v1/agent/heartbeat"
INGEST = "POST /api/v1/ingest"
READINGS = "GET /api/v1/sensor-data/readings"
TRIVIAL = "GET / (trivial WSGI)"

_fixture = json.loads(Path(os.environ["BENCH_LOAD_FIXTURE"]).read_text())
AGENTS: list[dict] = _fixture["agents"]
TIMESTAMPS_PER_INGEST: int = _fixture["timestamps_per_ingest"]
TS_ORIGIN = datetime.fromisoformat(_fixture["ts_origin"])
# One sequence for the whole run: every ingest gets timestamps no other ingest used,
# so each batch stores all its readings instead of hitting the duplicate rule.
_ingest_sequence = itertools.count()

_latencies: dict[str, list[float]] = defaultdict(list)
_errors: dict[str, int] = defaultdict(int)
_error_samples: list[str] = []
_window: dict[str, float] = {}


def ingest_body(agent: dict) -> str:
    first = next(_ingest_sequence) * TIMESTAMPS_PER_INGEST
    readings = []
    for step in range(first, first + TIMESTAMPS_PER_INGEST):
        ts = (TS_ORIGIN + timedelta(milliseconds=step)).isoformat()
        readings.extend(
            {"machine": agent["machine"], "sensor": sensor, "ts": ts, "value": round(random.uniform(0, 100), 3)}
            for sensor in agent["sensors"]
        )
    return json.dumps({"readings": readings})


def _expect(response, status: int) -> None:
    if response.status_code != status:
        response.failure(f"status {response.status_code}, expected {status}: {(response.text or '')[:300]}")


class AgentMixUser(FastHttpUser):
    """An edge agent or dashboard: 50% heartbeats, 30% ingests, 20% readings queries."""

    wait_time = constant(0)

    @staticmethod
    def _auth(agent: dict) -> dict[str, str]:
        return {"Authorization": f"Bearer {agent['key']}"}

    @task(5)
    def heartbeat(self):
        agent = random.choice(AGENTS)
        with self.client.get(
            "/api/v1/agent/heartbeat", headers=self._auth(agent), name=HEARTBEAT, catch_response=True
        ) as response:
            _expect(response, 200)

    @task(3)
    def ingest(self):
        agent = random.choice(AGENTS)
        headers = {**self._auth(agent), "Content-Type": "application/json"}
        with self.client.post(
            "/api/v1/ingest", data=ingest_body(agent), headers=headers, name=INGEST, catch_response=True
        ) as response:
            _expect(response, 202)

    @task(2)
    def readings(self):
        agent, target = random.choice(AGENTS), random.choice(AGENTS)
        path = f"/api/v1/sensor-data/readings?machine={target['machine']}&sensor={random.choice(target['sensors'])}"
        with self.client.get(path, headers=self._auth(agent), name=READINGS, catch_response=True) as response:
            _expect(response, 200)


class CeilingUser(FastHttpUser):
    """The same load generator against bench/trivial_wsgi.py."""

    wait_time = constant(0)

    @task
    def trivial(self):
        with self.client.get("/", name=TRIVIAL, catch_response=True) as response:
            _expect(response, 200)


@events.test_start.add_listener
def _on_test_start(**kwargs):
    _window["start"] = time.perf_counter()


@events.request.add_listener
def _on_request(name, response_time, exception=None, **kwargs):
    _latencies[name].append(response_time)
    _window["last"] = time.perf_counter()
    if exception is not None:
        _errors[name] += 1
        if len(_error_samples) < 10:
            _error_samples.append(f"{name}: {exception}")


@events.quitting.add_listener
def _on_quitting(**kwargs):
    seconds = _window.get("last", 0.0) - _window.get("start", 0.0)
    endpoints = {}
    for name, samples in _latencies.items():
        samples.sort()
        endpoints[name] = {
            "count": len(samples),
            "errors": _errors[name],
            "p50_ms": samples[int(0.50 * (len(samples) - 1))],
            "p99_ms": samples[int(0.99 * (len(samples) - 1))],
        }
    result = {"seconds": seconds, "endpoints": endpoints, "error_samples": _error_samples}
    Path(os.environ["BENCH_LOAD_RESULT"]).write_text(json.dumps(result))

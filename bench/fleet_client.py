"""The keep-alive load generator of bench_hotpaths and bench_fleet: `python -m bench.fleet_client SPEC OUT`.

An asyncio + aiohttp client in a process of its own (never imported by Django),
so that its CPU is not the server's. It reads a JSON spec and writes JSON
figures (per endpoint: count, errors, p50/p99 in ms, requests/s), and stops by
itself: every loop is bounded by the spec's duration. Loopback only: a base
URL that is not 127.0.0.1 or ::1 is refused.

Two modes:
- "closed": `connections` clients, each with one keep-alive connection, send
  `requests` (round-robin) back to back for `seconds`, after `warmup` seconds
  that are not counted. The throughput ceiling of an endpoint.
- "fleet": edge agents, one keep-alive connection each, heartbeating every
  `heartbeat_every` s and ingesting `batch_size`-reading batches every
  `ingest_every` s (start times spread over the first period), plus dashboard
  readers that read one sensor's readings page and its aggregate, then think
  for `reader_think` s. Scheduled, not back to back: a late request starts as
  soon as the agent's previous one is answered.
"""

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TIMEOUT = aiohttp.ClientTimeout(total=60)


class Recorder:
    def __init__(self):
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.samples: list[str] = []
        self.readings = 0
        self.counting = True
        self.statuses: dict[str, dict[str, int]] = {}  # per endpoint, per status (0: no answer)
        # With spec "record_batches": [machine, number, status, unix time sent].
        self.batches: list[list] | None = None

    def status(self, name: str, status: int) -> None:
        if self.counting:
            per = self.statuses.setdefault(name, {})
            per[str(status)] = per.get(str(status), 0) + 1

    def record(self, name: str, started: float, ok: bool, detail: str = "") -> None:
        if not self.counting:
            return
        self.latencies.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        if not ok:
            self.errors[name] = self.errors.get(name, 0) + 1
            if len(self.samples) < 10:
                self.samples.append(f"{name}: {detail[:300]}")

    def figures(self, seconds: float) -> dict:
        endpoints = {}
        for name, samples in self.latencies.items():
            samples.sort()
            endpoints[name] = {
                "count": len(samples),
                "errors": self.errors.get(name, 0),
                "rps": len(samples) / seconds,
                "p50_ms": samples[int(0.50 * (len(samples) - 1))],
                "p99_ms": samples[int(0.99 * (len(samples) - 1))],
            }
        figures = {
            "seconds": seconds,
            "endpoints": endpoints,
            "error_samples": self.samples,
            "readings": self.readings,
            "statuses": self.statuses,
        }
        if self.batches is not None:
            figures["batches"] = self.batches
        return figures


async def call_status(session, recorder: Recorder, name: str, method: str, url: str, expect: int, **kwargs) -> int:
    """The answer's status (0: none, the connection failed or timed out), recorded."""
    started = time.perf_counter()
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
            ok = response.status == expect
            recorder.record(name, started, ok, f"status {response.status}: {body[:200]!r}")
            recorder.status(name, response.status)
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        recorder.record(name, started, False, f"{type(exc).__name__}: {exc}")
        recorder.status(name, 0)
        return 0


async def call(session, recorder: Recorder, name: str, method: str, url: str, expect: int, **kwargs) -> bool:
    return await call_status(session, recorder, name, method, url, expect, **kwargs) == expect


def session_for(connections: int = 1) -> aiohttp.ClientSession:
    # One pool per simulated client: its keep-alive connection(s), nothing shared.
    connector = aiohttp.TCPConnector(limit=connections, force_close=False, enable_cleanup_closed=True)
    return aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)


# --- closed loop -----------------------------------------------------------------------------


async def closed(spec: dict) -> dict:
    recorder = Recorder()
    base, requests = spec["base"], spec["requests"]
    deadline_warm = time.perf_counter() + spec.get("warmup", 1.0)
    deadline = deadline_warm + spec["seconds"]
    recorder.counting = False

    async def client(number: int):
        async with session_for() as session:
            index = number
            while time.perf_counter() < deadline:
                req = requests[index % len(requests)]
                index += 1
                await call(
                    session,
                    recorder,
                    req.get("name", req["path"]),
                    req.get("method", "GET"),
                    base + req["path"],
                    req.get("expect", 200),
                    headers=req.get("headers"),
                    data=req.get("body"),
                )

    async def start_counting():
        await asyncio.sleep(max(0.0, deadline_warm - time.perf_counter()))
        recorder.counting = True

    await asyncio.gather(start_counting(), *(client(n) for n in range(spec["connections"])))
    return recorder.figures(spec["seconds"])


# --- fleet -------------------------------------------------------------------------------------


def ingest_body(agent: dict, batch_number: int, batch_size: int, origin: datetime) -> str:
    sensors = agent["sensors"]
    steps = batch_size // len(sensors)
    first = batch_number * steps
    parts = []
    for step in range(first, first + steps):
        ts = (origin + timedelta(milliseconds=step)).isoformat()
        value = round(random.uniform(0, 100), 3)
        parts.extend(
            f'{{"machine":"{agent["machine"]}","sensor":"{sensor}","ts":"{ts}","value":{value}}}' for sensor in sensors
        )
    return '{"readings":[' + ",".join(parts) + "]}"


async def fleet(spec: dict) -> dict:
    recorder = Recorder()
    base, seconds = spec["base"], spec["seconds"]
    expect = spec.get("expect", {"heartbeat": 200, "ingest": 202, "readings": 200, "aggregate": 200})
    names = spec["names"]
    origin = datetime.fromisoformat(spec["ts_origin"])
    started = time.perf_counter()
    deadline = started + seconds
    batch_size = spec["batch_size"]
    if spec.get("record_batches"):
        recorder.batches = []

    async def every(period: float, offset: float, action):
        next_at = started + offset
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= deadline:
                return
            await action()
            next_at += period

    async def agent_loop(agent: dict):
        headers = {"Authorization": f"Bearer {agent['key']}"}
        ingest_headers = {**headers, "Content-Type": "application/json"}
        batches = iter(range(10**9))
        async with session_for() as session:
            lock = asyncio.Lock()  # one connection: one request at a time, as an agent does

            async def heartbeat():
                async with lock:
                    await call(
                        session,
                        recorder,
                        names["heartbeat"],
                        "GET",
                        base + spec["heartbeat_path"],
                        expect["heartbeat"],
                        headers=headers,
                    )

            async def ingest():
                number = next(batches)
                body = ingest_body(agent, number, batch_size, origin)
                async with lock:
                    sent_at = time.time()  # wall clock: the driver's events use it too
                    status = await call_status(
                        session,
                        recorder,
                        names["ingest"],
                        "POST",
                        base + spec["ingest_path"],
                        expect["ingest"],
                        headers=ingest_headers,
                        data=body,
                    )
                if status == expect["ingest"]:
                    recorder.readings += batch_size
                if recorder.batches is not None:
                    recorder.batches.append([agent["machine"], number, status, round(sent_at, 3)])

            await asyncio.gather(
                every(spec["heartbeat_every"], random.uniform(0, spec["heartbeat_every"]), heartbeat),
                every(spec["ingest_every"], random.uniform(0, spec["ingest_every"]), ingest),
            )

    async def reader_loop(reader: dict):
        headers = {"Authorization": f"Bearer {reader['key']}"}
        async with session_for() as session:
            await asyncio.sleep(random.uniform(0, spec["reader_think"]))
            while time.perf_counter() < deadline:
                agent = random.choice(spec["agents"])
                sensor = random.choice(agent["sensors"])
                query = f"?machine={agent['machine']}&sensor={sensor}"
                await call(
                    session,
                    recorder,
                    names["readings"],
                    "GET",
                    base + spec["readings_path"] + query,
                    expect["readings"],
                    headers=headers,
                )
                await call(
                    session,
                    recorder,
                    names["aggregate"],
                    "GET",
                    base + spec["aggregate_path"] + query + "&bucket=1m",
                    expect["aggregate"],
                    headers=headers,
                )
                await asyncio.sleep(spec["reader_think"])

    await asyncio.gather(*(agent_loop(a) for a in spec["agents"]), *(reader_loop(r) for r in spec["readers"]))
    return recorder.figures(time.perf_counter() - started)


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    host = urlsplit(spec["base"]).hostname
    if host not in LOOPBACK:
        print(f"fleet_client: refusing {host!r}: loopback only", file=sys.stderr)
        return 2
    result = asyncio.run(closed(spec) if spec["mode"] == "closed" else fleet(spec))
    result["generated_at"] = datetime.now(UTC).isoformat()
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

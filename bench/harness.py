"""The benchmark harness: a fresh PostgreSQL database, a set of benchmark modules,
one table of figures, and docs/performance.md.

A benchmark module is `bench/bench_<topic>.py` with:

    TITLE = "What is measured"
    def run(ctx: Context) -> list[Measurement]: ...

Every figure that matters is a ratio against a baseline measured in the same
run, so that it holds on a noisy machine.
"""

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# What `python -m bench` runs Django with (real password hashers, quiet logs).
SETTINGS_MODULE = "bench.settings"


@dataclass
class Measurement:
    name: str
    value: float
    unit: str
    baseline: str = ""  # what the value is compared with
    baseline_value: float | None = None
    ratio: float | None = None  # value / baseline_value unless given
    target: str = ""  # e.g. "<= 1.1x"
    ok: bool | None = None  # target met?
    note: str = ""

    def __post_init__(self):
        if self.ratio is None and self.baseline_value:
            self.ratio = self.value / self.baseline_value


@dataclass
class Context:
    """What a benchmark gets: the database is migrated, Django is set up."""

    database_url: str
    quick: bool = False  # BENCH_QUICK=1: smaller sizes, for a smoke run
    notes: list[str] = field(default_factory=list)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def truncate_all(self) -> None:
        """Empty every table of the project's apps, so each benchmark starts clean."""
        from django.apps import apps
        from django.db import connection

        ours = {"tenants", "audit", "users", "apikeys", "settings_app", "telemetry", "retention"}
        tables = [m._meta.db_table for m in apps.get_models() if m._meta.app_label in ours]
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")

    def server_env(self, **extra: str) -> dict[str, str]:
        """The environment for a process of its own (a server, a worker) on the bench database."""
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url
        env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
        env.update(extra)
        return env


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """The best time of `repeat` runs of `number` calls, in seconds per call."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def median_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)

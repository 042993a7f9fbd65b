"""`python -m bench [TOPIC ...]` (`make bench`): every benchmark, one table, docs/performance.md.

1. Creates a fresh PostgreSQL database `haltless_bench_<pid>` (BENCH_DATABASE_PREFIX
   replaces `haltless_bench`) on the server of
   BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432) and points
   DATABASE_URL and DJANGO_SETTINGS_MODULE (bench.settings) at it before Django
   is imported; then sets Django up and migrates.
2. Runs each `bench/bench_<topic>.py` (all, or those whose topic matches an
   argument) in a process of its own with a time limit, so that a module that
   fails or hangs is reported without losing the others' figures.
3. Prints the table, writes docs/performance.md (machine, command, date,
   figures, notes; only for a run of every module, unless --output says
   where), and drops the database, also on failure or Ctrl-C.

BENCH_QUICK=1 (or --quick) runs every module at its small sizes, as a smoke test.
BENCH_SETTINGS_MODULE runs on other settings than bench.settings (an experiment).
Exit status: 0 when every module ran (a missed target is reported, not fatal),
1 when a module failed.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.harness import REPO_ROOT, SETTINGS_MODULE, Measurement

DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "performance.md"
# Hand-written findings (profiles, before/after) that every generated report carries.
FINDINGS_FILE = REPO_ROOT / "bench" / "performance_notes.md"
# `make bench` must finish within half an hour on the 2-core machine: the whole run has
# a budget (the fleet test alone drives 2 x 120 s, the reads and the partition drops load
# 10M rows each, the soak takes what is left), and no single module may take most of it.
DEFAULT_BUDGET = 1800
DEFAULT_MODULE_TIMEOUT = 420
# Kept back from the budget for dropping the database and writing the report.
FINISH_RESERVE = 15
MIN_MODULE_SECONDS = 30
TERMINATE_GRACE_SECONDS = 10


# --- The database -------------------------------------------------------------------


def database_url_for(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def _admin_connection(server_url: str):
    import psycopg

    return psycopg.connect(database_url_for(server_url, "postgres"), autocommit=True)


def database_create(server_url: str, name: str) -> None:
    from psycopg import sql

    with _admin_connection(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(server_url: str, name: str) -> None:
    from psycopg import sql

    with _admin_connection(server_url) as conn:
        # FORCE: a server a module left behind must not keep the database alive.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def settle(database_url: str) -> None:
    """Write out what the last module left dirty, so the next one does not pay for it."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as exc:  # needs a superuser or pg_checkpoint; only a nicety
        print(f"bench: no CHECKPOINT between modules ({exc})", file=sys.stderr)


# --- Modules ---------------------------------------------------------------------------


# Modules that run after every other, in this order: the soak takes what the budget has left.
LAST = ("bench_soak",)


def discover(topics: list[str]) -> list[str]:
    """Module names `bench_<topic>`, sorted (those of LAST at the end); with topics, those whose topic contains one."""
    names = sorted((p.stem for p in (REPO_ROOT / "bench").glob("bench_*.py")), key=lambda n: (n in LAST, n))
    if not topics:
        return names
    return [n for n in names if any(t.removeprefix("bench_") in n.removeprefix("bench_") for t in topics)]


def run_module(name: str, *, env: dict[str, str], timeout: float, workdir: Path) -> dict:
    out_path = workdir / f"{name}.json"
    print(f"\n=== {name}", flush=True)
    started = time.perf_counter()
    # A session of its own, so that on a time-out the module and every server it
    # started go down together.
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.module_runner", name, str(out_path)],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _stop_group(process)
    seconds = time.perf_counter() - started
    report = {"module": name, "title": name, "measurements": [], "notes": [], "error": None}
    if out_path.exists():
        report.update(json.loads(out_path.read_text()))
    if timed_out:
        report["error"] = f"timed out after {timeout:.0f} s"
    elif process.returncode != 0 and not report["error"]:
        report["error"] = f"exited with status {process.returncode}"
    report["seconds"] = seconds
    report["measurements"] = [Measurement(**m) for m in report["measurements"]]
    status = f"FAILED: {report['error']}" if report["error"] else "ok"
    print(f"=== {name}: {status} ({seconds:.0f} s)", flush=True)
    return report


def skipped(name: str, reason: str) -> dict:
    print(f"\n=== {name}: {reason}", flush=True)
    return {"module": name, "title": name, "measurements": [], "notes": [], "error": reason, "seconds": 0.0}


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the module (on a time-out) and anything it left running in its group."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=TERMINATE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    # The module has exited; a server it failed to stop is still in its group.
    if _signal_group(process.pid, signal.SIGTERM):
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        while time.monotonic() < deadline and _signal_group(process.pid, 0):
            time.sleep(0.2)
        _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


# --- Formatting ------------------------------------------------------------------------


def fmt_number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):  # counts: queries, errors
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


TIMES = "\u00d7"  # the multiplication sign of "0.52x"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio >= 100:
        return f"{ratio:,.0f}{TIMES}"
    return f"{ratio:.2f}{TIMES}" if ratio >= 0.01 else f"{ratio:.3g}{TIMES}"


def fmt_ok(ok: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[ok]


HEADERS = ["benchmark", "measurement", "value", "unit", "baseline", "ratio", "target", "ok"]


def table_rows(reports: list[dict]) -> list[list[str]]:
    rows = []
    for report in reports:
        topic = report["module"].removeprefix("bench_")
        for m in report["measurements"]:
            baseline = m.baseline
            if m.baseline_value is not None:
                baseline = f"{baseline} ({fmt_number(m.baseline_value)})" if baseline else fmt_number(m.baseline_value)
            rows.append(
                [topic, m.name, fmt_number(m.value), m.unit, baseline, fmt_ratio(m.ratio), m.target, fmt_ok(m.ok)]
            )
        if report["error"]:
            rows.append([topic, "(module failed)", "", "", "", "", "", "FAILED"])
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    numeric = {2, 5}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---", "---", "---:", "---", "---", "---:", "---", "---"]
    return "\n".join([line(HEADERS), "|" + "|".join(align) + "|", *(line(r) for r in rows)])


# --- The machine -------------------------------------------------------------------------


def machine_facts() -> list[tuple[str, str]]:
    import django
    from django.db import connection

    cpu = platform.processor() or "unknown"
    try:
        for entry in Path("/proc/cpuinfo").read_text().splitlines():
            if entry.startswith("model name"):
                cpu = entry.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for entry in Path("/proc/meminfo").read_text().splitlines():
            if entry.startswith("MemTotal:"):
                memory = f"{int(entry.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("Memory", memory),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("Django", django.get_version()),
        ("PostgreSQL", postgres),
        ("psycopg", version("psycopg")),
        ("gunicorn / locust", f"{version('gunicorn')} / {version('locust')}"),
        ("Commit", _git_commit()),
        ("Settings", os.environ.get("DJANGO_SETTINGS_MODULE", "")),
    ]


def _load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


# --- The report ----------------------------------------------------------------------------


def command_line(argv: list[str], quick: bool) -> str:
    command = " ".join(["python -m bench", *argv])
    if quick and "--quick" not in argv:
        command = f"BENCH_QUICK=1 {command}"
    if os.environ.get("MAKELEVEL"):
        return f"`make bench`, which runs `{command}`"
    return f"`{command}`"


def performance_markdown(
    *, reports: list[dict], facts: list[tuple[str, str]], command: str, date: str, seconds: float, quick: bool
) -> str:
    out = [
        "# Performance",
        "",
        "Generated by `python -m bench` (`make bench`); do not edit by hand. Every key figure",
        "is a ratio against a baseline measured in the same run on the same machine, so it",
        "holds on a noisy machine. Hand-written findings live in `bench/performance_notes.md`",
        "and are copied in at the end.",
        "",
    ]
    if quick:
        out += ["> **Quick run (BENCH_QUICK=1): small sizes, a smoke test; not the figures to quote.**", ""]
    out += ["## Machine", ""]
    out += [f"- **{name}:** {value}" for name, value in facts]
    out += [
        "",
        "## Run",
        "",
        f"- **Command:** {command}",
        f"- **Date:** {date}",
        f"- **Took:** {seconds / 60:.1f} min",
        "",
        "| module | what | took | status |",
        "|---|---|---:|---|",
    ]
    for r in reports:
        status = f"FAILED: {r['error']}" if r["error"] else "ok"
        out.append(f"| {r['module']} | {r['title']} | {r['seconds']:.0f} s | {status.replace('|', '/')} |")
    out += ["", "## Figures", "", markdown_table(table_rows(reports)), ""]
    notes = [(r, [f"{m.name}: {m.note}" for m in r["measurements"] if m.note] + list(r["notes"])) for r in reports]
    if any(lines for _, lines in notes):
        out += ["## Notes from the benchmarks", ""]
        for report, lines in notes:
            if lines:
                out += [f"### {report['title']}", ""]
                out += [f"- {line}" for line in lines]
                out.append("")
    failed = [r for r in reports if r["error"]]
    if failed:
        out += ["## Failures", ""]
        for r in failed:
            out += [f"### {r['module']}", "", "```", (r.get("traceback") or r["error"]).strip()[-3000:], "```", ""]
    if FINDINGS_FILE.exists():
        out += ["## Findings and profiling", "", FINDINGS_FILE.read_text().strip(), ""]
    return "\n".join(out)


# --- Main ----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("topics", nargs="*", help="run only bench_<topic> modules whose topic contains one of these")
    parser.add_argument("--quick", action="store_true", help="small sizes (same as BENCH_QUICK=1)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the report; default docs/performance.md, and for a run of some topics only, nowhere",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--budget",
        type=float,
        default=float(os.environ.get("BENCH_BUDGET", DEFAULT_BUDGET)),
        help="seconds the whole run may take; a module that would overrun it is stopped or skipped",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("BENCH_MODULE_TIMEOUT", DEFAULT_MODULE_TIMEOUT)),
        help="seconds one module may take",
    )
    return parser.parse_args(argv)


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    modules = discover(args.topics)
    if args.list or not modules:
        print("\n".join(modules) if modules else f"no benchmark module matches {args.topics}")
        return 0 if modules else 2
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)
    # BENCH_DATABASE_PREFIX: several people benchmarking on one server name their own databases.
    db_name = f"{os.environ.get('BENCH_DATABASE_PREFIX', 'haltless_bench')}_{os.getpid()}"
    database_url = database_url_for(server_url, db_name)
    # Before Django is imported: it reads both once, at setup.
    os.environ["DATABASE_URL"] = database_url
    # BENCH_SETTINGS_MODULE: measure a settings change against bench.settings (before/after).
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS_MODULE", SETTINGS_MODULE)
    if quick:
        os.environ["BENCH_QUICK"] = "1"
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    started = time.perf_counter()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench: database {db_name} on {urlsplit(server_url).hostname}; modules: {', '.join(modules)}")
    database_create(server_url, db_name)
    try:
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        facts = machine_facts()
        load_at_start = _load_average()
        connections.close_all()
        with tempfile.TemporaryDirectory(prefix="haltless-bench-") as workdir:
            reports = []
            for name in modules:
                remaining = args.budget - (time.perf_counter() - started) - FINISH_RESERVE
                if remaining < MIN_MODULE_SECONDS:
                    reports.append(skipped(name, f"not run: the {args.budget:.0f} s budget was spent"))
                    continue
                timeout = min(args.timeout, remaining)
                # A module that can size itself (the soak) knows how long it may take.
                env = {**os.environ, "BENCH_MODULE_SECONDS": f"{timeout:.0f}"}
                reports.append(run_module(name, env=env, timeout=timeout, workdir=Path(workdir)))
                settle(database_url)
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django may not even be set up; the drop matters
            pass
        database_drop(server_url, db_name)
    seconds = time.perf_counter() - started
    # Others' processes on the machine share its cores: say how busy it was.
    facts.append(("Load average (1, 5, 15 min)", f"{load_at_start} at the start, {_load_average()} at the end"))

    rows = table_rows(reports)
    print("\n" + text_table(rows))
    missed = [r for r in rows if r[-1] == "NO"]
    failed = [r["module"] for r in reports if r["error"]]
    print(
        f"\n{len(rows)} figures in {seconds / 60:.1f} min; {len(missed)} miss their target; failed: {failed or 'none'}"
    )
    # A run of some topics must not replace the full report with a partial one.
    output = args.output or (None if args.topics else DEFAULT_OUTPUT)
    if output is not None and not args.no_write:
        output.write_text(
            performance_markdown(
                reports=reports,
                facts=facts,
                command=command_line(argv, quick),
                date=date,
                seconds=seconds,
                quick=quick,
            )
        )
        print(f"wrote {output.relative_to(REPO_ROOT) if output.is_relative_to(REPO_ROOT) else output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

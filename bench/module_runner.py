"""Run one benchmark module in a process of its own: `python -m bench.module_runner NAME OUT.json`.

`python -m bench` starts one of these per module, with DATABASE_URL and
DJANGO_SETTINGS_MODULE already set to the migrated bench database, so that a
module that crashes, hangs or bloats the heap cannot take the other modules'
figures with it, and a peak-memory figure is the module's own.
"""

import dataclasses
import importlib
import json
import os
import sys
import time
import traceback


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.module_runner bench_<topic> OUT.json", file=sys.stderr)
        return 2
    module_name, out_path = argv
    report: dict = {"module": module_name, "title": module_name, "measurements": [], "notes": [], "error": None}
    started = time.perf_counter()
    try:
        import django

        django.setup()
        from bench.harness import Context

        module = importlib.import_module(f"bench.{module_name}")
        report["title"] = getattr(module, "TITLE", module_name)
        ctx = Context(database_url=os.environ["DATABASE_URL"], quick=os.environ.get("BENCH_QUICK") == "1")
        try:
            measurements = module.run(ctx)
        finally:
            report["notes"] = list(ctx.notes)
        report["measurements"] = [dataclasses.asdict(m) for m in measurements]
    except BaseException as exc:  # reported to the parent, whatever it was
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
        traceback.print_exc()
    report["seconds"] = time.perf_counter() - started
    with open(out_path, "w") as out:
        json.dump(report, out, default=str)
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The bench runner's own logic: module selection, database naming, formatting, the report."""

import json

import pytest

from bench import __main__ as runner
from bench import trivial_wsgi
from bench.harness import Measurement


def report(module="bench_demo", *, measurements=(), error=None, notes=()):
    return {
        "module": module,
        "title": "Demo: what is measured",
        "measurements": list(measurements),
        "notes": list(notes),
        "error": error,
        "seconds": 12.0,
    }


class TestDiscover:
    def test_every_module_without_topics(self):
        names = runner.discover([])
        first = [n for n in names if n not in runner.LAST]
        assert names == sorted(first) + [n for n in runner.LAST if n in names]
        assert names[-1] == "bench_soak"  # it takes what the budget has left
        assert "bench_load" in names
        assert all(name.startswith("bench_") for name in names)

    def test_topics_select_by_substring(self):
        assert runner.discover(["load"]) == ["bench_load"]
        assert runner.discover(["bench_load"]) == ["bench_load"]

    def test_unknown_topic_selects_nothing(self):
        assert runner.discover(["no-such-topic"]) == []


class TestDatabaseUrl:
    def test_names_the_database_on_the_same_server(self):
        url = runner.database_url_for("postgres://postgres@127.0.0.1:5432", "haltless_bench_42")
        assert url == "postgres://postgres@127.0.0.1:5432/haltless_bench_42"

    def test_replaces_a_database_already_named_and_keeps_options(self):
        url = runner.database_url_for("postgres://u:p@127.0.0.1:5433/other?sslmode=disable", "haltless_bench_42")
        assert url == "postgres://u:p@127.0.0.1:5433/haltless_bench_42?sslmode=disable"


class TestFormatting:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, ""),
            (0, "0"),
            (3, "3"),
            (12345.6, "12,346"),
            (123.4, "123"),
            (12.34, "12.3"),
            (1.0, "1.00"),
            (0.01234, "0.0123"),
        ],
    )
    def test_numbers(self, value, text):
        assert runner.fmt_number(value) == text

    @pytest.mark.parametrize(
        ("ratio", "text"), [(None, ""), (0.5, "0.50\u00d7"), (1234.0, "1,234\u00d7"), (0.004, "0.004\u00d7")]
    )
    def test_ratios(self, ratio, text):
        assert runner.fmt_ratio(ratio) == text

    def test_ok(self):
        assert [runner.fmt_ok(v) for v in (True, False, None)] == ["yes", "NO", ""]


class TestTable:
    def test_row_per_measurement_with_baseline_and_ratio(self):
        m = Measurement("ingest", 6.0, "ms", baseline="COPY", baseline_value=4.0, target="<= 2x", ok=True)
        rows = runner.table_rows([report(measurements=[m])])
        assert rows == [["demo", "ingest", "6.00", "ms", "COPY (4.00)", "1.50\u00d7", "<= 2x", "yes"]]

    def test_failed_module_has_a_row(self):
        rows = runner.table_rows([report(error="timed out after 300 s")])
        assert rows == [["demo", "(module failed)", "", "", "", "", "", "FAILED"]]

    def test_markdown_escapes_pipes(self):
        table = runner.markdown_table([["a|b", "m", "1", "u", "", "", "", ""]])
        assert "a\\|b" in table.splitlines()[-1]

    def test_text_table_aligns_columns(self):
        lines = runner.text_table([["demo", "x", "1.00", "ms", "", "", "", ""]]).splitlines()
        assert len({len(line.rstrip()) for line in lines[:2]}) == 1


class TestReport:
    def test_has_machine_command_figures_notes_and_failures(self):
        m = Measurement("ingest", 6.0, "ms", note="measured hot")
        text = runner.performance_markdown(
            reports=[report(measurements=[m], notes=["a module note"]), report("bench_broken", error="boom")],
            facts=[("CPU", "Test CPU, 2 cores")],
            command="`python -m bench`",
            date="2026-01-01 00:00 UTC",
            seconds=90.0,
            quick=False,
        )
        for expected in (
            "**CPU:** Test CPU, 2 cores",
            "**Command:** `python -m bench`",
            "**Date:** 2026-01-01 00:00 UTC",
            "| demo | ingest | 6.00 | ms |",
            "- ingest: measured hot",
            "- a module note",
            "### bench_broken",
            "FAILED: boom",
        ):
            assert expected in text
        assert "Quick run" not in text

    def test_quick_run_says_so(self):
        text = runner.performance_markdown(
            reports=[], facts=[], command="`python -m bench`", date="d", seconds=1.0, quick=True
        )
        assert "Quick run" in text

    def test_skipped_module_is_a_failure_with_its_reason(self):
        skipped = runner.skipped("bench_late", "not run: the 570 s budget was spent")
        assert skipped["error"] == "not run: the 570 s budget was spent"
        assert runner.table_rows([skipped])[0][-1] == "FAILED"


class TestModuleRunnerReport:
    def test_measurements_survive_the_json_round_trip(self):
        import dataclasses

        m = Measurement("x", 2.0, "ms", baseline="y", baseline_value=4.0, target="<= 1x", ok=True, note="n")
        back = Measurement(**json.loads(json.dumps(dataclasses.asdict(m))))
        assert back == m
        assert back.ratio == 0.5


class TestTrivialWsgi:
    def test_answers_fixed_json(self):
        started = {}

        def start_response(status, headers):
            started.update(status=status, headers=dict(headers))

        body = b"".join(trivial_wsgi.application({"PATH_INFO": "/"}, start_response))
        assert started["status"] == "200 OK"
        assert started["headers"]["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok"}
        assert int(started["headers"]["Content-Length"]) == len(body)


class TestProfileSummary:
    def test_inclusive_and_self_samples(self, tmp_path):
        from bench.profile_summary import summarise

        raw = tmp_path / "profile.txt"
        raw.write_text(
            'process 1:"gunicorn";handle (wsgi.py:1);view (views.py:2);query (db.py:3) 3\n'
            'process 1:"gunicorn";handle (wsgi.py:1);view (views.py:2) 1\n'
        )
        text = summarise(raw, matches=["views.py", "db.py"], top=5)
        inclusive, own = text.split("-- self")
        assert "4 samples" in text
        assert "100.0%  view (views.py:2)" in inclusive
        assert "75.0%  query (db.py:3)" in own
        assert "25.0%  view (views.py:2)" in own
        assert "wsgi.py" not in text

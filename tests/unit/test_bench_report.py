"""The bench's report code (bench/core.py's tables, the ghz summary, which modules run):
what it writes, not what it measures (no test depends on a timing)."""

from __future__ import annotations

from bench.__main__ import modules
from bench.core import Section
from bench.ghz_load import summary


def test_a_section_is_a_markdown_table_with_its_notes() -> None:
    section = Section("Batches", ["what", "mesh s", "ratio", "target"])
    section.rows.append(["12 x 5-minute files", 11.123, 1.2468, "<= 1.15x"])
    section.rows.append(["big", 1234.5, 0.0001234, ""])
    section.notes.append("A note.")
    assert section.markdown().splitlines() == [
        "## Batches",
        "",
        "| what | mesh s | ratio | target |",
        "| --- | --- | --- | --- |",
        "| 12 x 5-minute files | 11.1 | 1.25 | <= 1.15x |",
        "| big | 1234 | 0.000123 |  |",
        "",
        "A note.",
    ]


def test_a_section_s_parts_follow_it_one_heading_level_down() -> None:
    section = Section("Batches", ["what", "s"], rows=[["12 x 5-minute files", 13.8]])
    section.parts.append(Section("What it is made of", ["stage", "s"], rows=[["fetch", 0.03]]))
    assert section.markdown().splitlines() == [
        "## Batches",
        "",
        "| what | s |",
        "| --- | --- |",
        "| 12 x 5-minute files | 13.8 |",
        "",
        "### What it is made of",
        "",
        "| stage | s |",
        "| --- | --- |",
        "| fetch | 0.03 |",
    ]


def test_the_ghz_summary_reads_rate_percentiles_and_errors() -> None:
    report = {
        "count": 1000,
        "rps": 812.5,
        "latencyDistribution": [
            {"percentage": 50, "latency": 1_500_000},
            {"percentage": 99, "latency": 4_250_000},
        ],
        "statusCodeDistribution": {"OK": 997, "Unavailable": 2, "DeadlineExceeded": 1},
    }
    assert summary(report) == {
        "count": 1000, "rps": 812.5, "p50 ms": 1.5, "p99 ms": 4.25, "errors": 3,
    }  # fmt: skip


def test_a_ghz_report_without_calls_has_no_errors_counted() -> None:
    report = {"count": 0, "rps": 0.0, "latencyDistribution": None, "statusCodeDistribution": {}}
    assert summary(report)["errors"] == 0
    assert summary(report)["p99 ms"] == 0.0


def test_a_module_not_run_by_default_runs_only_when_named() -> None:
    assert "bench.mongo_servers" not in [m.__name__ for m in modules([])]
    assert [m.__name__ for m in modules(["mongo_servers"])] == ["bench.mongo_servers"]

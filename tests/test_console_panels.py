"""The console's panels without a server: what a client may ask of the series (bounded, buckets on whole
steps) and what the decision panel makes of a report that is there, missing, broken or of another kind."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelyard.console.panels import decision_panel, series_query
from modelyard.errors import InvalidRequest

NOW = 1_796_000_123.4


@pytest.mark.parametrize(
    ("window", "step", "buckets"),
    [("1h", 60, 60), ("24h", 1_800, 48), ("7d", 3 * 3_600, 56), ("30d", 12 * 3_600, 60)],
)
def test_a_named_window_is_cut_into_whole_steps_ending_after_now(
    window: str, step: int, buckets: int
) -> None:
    query = series_query({"window": window}, NOW)
    assert (query.step, query.buckets) == (step, buckets)
    assert query.until % step == 0 and query.since % step == 0
    assert query.until - step < NOW <= query.until


def test_an_explicit_window_keeps_its_edges() -> None:
    query = series_query({"since": "1796000000", "until": "1796003600", "by": "tenant", "groups": "3"}, NOW)
    assert (query.since, query.until, query.step, query.by, query.groups) == (
        1796000000,
        1796003600,
        60,
        "tenant",
        3,
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"window": "1y"}, "window"),
        ({"by": "request_id"}, "by"),
        ({"step": "ten"}, "step"),
        ({"window": "30d", "step": "60"}, "step"),
        ({"groups": "13"}, "groups"),
        ({"until": "1796003600"}, "since"),
        ({"since": "1796003600", "until": "1796000000"}, "until"),
        ({"since": "0", "until": "1796000000", "step": "86400000"}, "since"),
    ],
)
def test_a_query_out_of_bounds_is_a_400_naming_the_parameter(params: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        series_query(params, NOW)
    assert refused.value.param == param


def test_the_decision_panel_says_how_to_produce_a_missing_or_broken_report(tmp_path: Path) -> None:
    missing = decision_panel(tmp_path / "reports" / "decision.json")
    assert missing["available"] is False and "modelyard decide --out" in missing["how"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "cannot be read" in decision_panel(broken)["problem"]
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps({"schema_version": 7}))
    assert "schema 1" in decision_panel(other)["problem"]


def test_the_decision_panel_keeps_recommendations_and_triggers(tmp_path: Path) -> None:
    report = tmp_path / "decision.json"
    trigger = {
        "name": "volume past break-even",
        "fired": True,
        "evidence": "3.1M req/month",
        "workload": "chat",
    }
    workload = {"name": "chat", "recommendation": {"kind": "api", "headline": "API: gpt-x", "why": "cheapest"},
                "triggers": [trigger], "options": [{"huge": "x" * 1000}]}  # fmt: skip
    report.write_bytes(orjson.dumps({"schema_version": 1, "generated_on": "2026-12-01", "workloads": [workload],
                                     "triggers": [], "portfolio": {"total_usd": "12.50"}}))  # fmt: skip
    panel = decision_panel(report)
    assert panel["available"] and panel["portfolio_total_usd"] == "12.50"
    assert panel["workloads"] == [
        {"name": "chat", "recommendation": workload["recommendation"], "triggers": [trigger]}
    ]

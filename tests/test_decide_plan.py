"""Planning mode: workloads declared before traffic exists get the same report, labelled "planned"."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modelyard.cli.decide import EXAMPLES, decide_command
from modelyard.economics.aggregate import Traffic
from modelyard.economics.capacity import SECONDS_PER_MONTH
from modelyard.economics.engine import decide, load_catalogs
from modelyard.economics.plan import Plan, load_plan, planned_profiles
from modelyard.economics.traffic import read_traffic
from modelyard.errors import ConfigError
from modelyard.report.json_doc import document
from tests.test_decide_truth import _calls, _example_org, _trace

PLAN: dict[str, Any] = {
    "workloads": {
        "launch": {
            "requests_per_month": 3_000_000,
            "tokens": {"input": 1800, "output": 350, "cached_input": 900},
            "peak_to_avg": 3.5,
            "growth_pct_per_month": 8,
            "runs_on": {"provider": "openai", "model": "gpt-4.1-mini"},
            "slo": {"ttft_p95_ms": 1500},
        },
        "claims": {
            "peak_requests_per_s": 12,
            "tokens": {"input": 4000, "output": 200},
            "hour_of_day": [1] * 12 + [6] + [1] * 11,
            "data_class": "restricted",
        },
    }
}


def _plan(tmp_path: Path, raw: dict[str, Any] = PLAN) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_plan(path)


def test_planned_profiles_follow_the_plan_by_hand(tmp_path: Path) -> None:
    org = _example_org(tmp_path)
    profiles, notes = planned_profiles(_plan(tmp_path), org, set())
    by = {p.name: p for p in profiles}
    launch, claims = by["launch"], by["claims"]
    assert notes == []
    assert launch.origin == claims.origin == "planned"
    assert launch.requests_per_month == 3_000_000
    assert launch.peak_to_avg == pytest.approx(3.5)
    assert max(launch.hour_of_day) * 24 == pytest.approx(3.5) and sum(launch.hour_of_day) == pytest.approx(1)
    assert launch.growth_per_month == pytest.approx(0.08)
    assert launch.models[0].provider_kind == "openai" and launch.thin_trace is None
    # claims: the busiest hour holds 6 of 29 shares, so peak/avg = 6/29 × 24; per month = peak ÷ that × s.
    peak_to_avg = 6 / 29 * 24
    assert claims.peak_to_avg == pytest.approx(peak_to_avg)
    assert float(claims.requests_per_month) == pytest.approx(
        12 / peak_to_avg * float(SECONDS_PER_MONTH), rel=1e-6
    )
    assert claims.data_class == "restricted" and claims.workload_class == "sensitive data"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"peak_requests_per_s": 3}, "exactly one of requests_per_month or peak_requests_per_s"),
        ({"hour_of_day": [1] * 24}, "peak_to_avg or hour_of_day, not both"),
        ({"tokens": {"input": 10, "output": 5, "cached_input": 20}}, "cached_input cannot exceed input"),
        ({"tokens": {"input": 10}}, "tokens.output"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_plan_names_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = json.loads(json.dumps(PLAN))
    raw["workloads"]["launch"].update(change)
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, raw)
    assert message in str(err.value) and "plan.yaml" in str(err.value)


def test_a_plan_only_run_reports_every_workload_as_planned(tmp_path: Path) -> None:
    org = _example_org(tmp_path)
    decision = decide(org, Traffic("plan", [], []), load_catalogs(org), date(2026, 12, 1), _plan(tmp_path))
    doc = document(decision)
    assert [w["name"] for w in doc["workloads"]] == ["claims", "launch"]
    for w in doc["workloads"]:
        assert w["profile"]["origin"] == "planned"
        assert "on planned volumes" in w["recommendation"]["headline"]
        assert "planned_volume" in {c["kind"] for c in w["recommendation"]["conditions"]}
    claims = next(w for w in doc["workloads"] if w["name"] == "claims")
    # The plan's restricted class reaches the policy: only self-hosted options are feasible.
    assert claims["recommendation"]["option"].startswith("self_hosted:")
    launch = next(w for w in doc["workloads"] if w["name"] == "launch")
    assert launch["profile"]["growth_source"] == "planned: 8%/month"
    assert "planned volume priced at catalog rates" in launch["profile"]["api_spend_source"]


def test_a_mixed_run_keeps_measured_workloads_and_ignores_a_planned_duplicate(tmp_path: Path) -> None:
    org = _example_org(tmp_path)
    calls = _calls("launch", 3000, 20, model="gpt-4.1-mini", provider="openai")
    calls += _calls("chat", 3000, 20, model="gpt-4.1-mini", provider="openai")
    traffic = read_traffic(_trace(tmp_path / "t.jsonl", calls))
    decision = decide(org, traffic, load_catalogs(org), date(2026, 12, 1), _plan(tmp_path))
    origins = {d.profile.name: d.profile.origin for d in decision.workloads}
    assert origins == {"chat": "measured", "claims": "planned", "launch": "measured"}
    assert any("launch: measured traffic exists" in n for n in decision.notes)


def test_no_traffic_and_no_plan_is_a_clear_error(tmp_path: Path) -> None:
    org = _example_org(tmp_path)
    with pytest.raises(ConfigError, match="no workloads"):
        decide(org, Traffic("empty", [], []), load_catalogs(org), date(2026, 12, 1))


def test_the_cli_runs_the_bundled_plan_alone(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        decide_command,
        [
            "--plan",
            str(EXAMPLES / "plan.yaml"),
            "--out",
            str(tmp_path),
            "--today",
            "2026-12-03",
            "--evals",
            str(tmp_path / "none"),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "decision.json").read_text())
    assert doc["traffic_source"].startswith("plan ")
    assert {w["profile"]["origin"] for w in doc["workloads"]} == {"planned"}
    html = (tmp_path / "decision.html").read_text()
    assert "planned, not measured" in html


def test_the_first_screen_says_what_is_measured_planned_and_how_old_prices_are(tmp_path: Path) -> None:
    from modelyard.economics.provenance import inputs

    def old_limit(raw: dict[str, Any]) -> None:
        raw["catalog"]["max_age_days"] = 30

    org = _example_org(tmp_path, old_limit)
    calls = _calls("chat", 3000, 20, model="gpt-4.1-mini", provider="openai")
    traffic = read_traffic(_trace(tmp_path / "t.jsonl", calls))
    decision = decide(org, traffic, load_catalogs(org), date(2026, 12, 1), _plan(tmp_path))
    lines = {line.what: line for line in inputs(decision)}
    traffic_line = lines["Traffic"]
    assert traffic_line.origin == "measured" and traffic_line.warn
    assert "1 workloads from" in traffic_line.detail and "2 planned: claims, launch" in traffic_line.detail
    gpu = lines["GPU prices"]
    assert gpu.warn and "older than 30 days" in gpu.detail and "lambda/H100-SXM-80GB" in gpu.detail
    doc = document(decision)
    assert {i["what"] for i in doc["inputs"]} >= {"Traffic", "API prices", "GPU prices"}

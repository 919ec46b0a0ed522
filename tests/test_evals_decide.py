"""Eval results feed ``modelyard decide``: an eval run over loopback fakes writes latest.json, ``decide
--evals`` reads it as the quality input, and the quality floor changes a workload's decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from modelyard.cli.decide import EXAMPLES, decide_command
from modelyard.cli.eval import eval_command
from modelyard.economics.org import OrgProfile, QualityScore, load_org
from modelyard.economics.quality import load_eval_quality, merge_quality
from modelyard.errors import ConfigError
from tests.fakes.scripted_openai import FIXTURES, ScriptedState, serving_in_thread

LLAMA_8B = "Llama-3.1-8B-Instruct"


def _gateway_config(folder: Path, url: str) -> Path:
    """Gateway models named like the org profile's candidates: the 8B stand-in answers with broken JSON."""
    path = folder / "modelyard.yaml"
    path.write_text(
        f"providers:\n  fake: {{kind: openai_compatible, base_url: '{url}/v1'}}\n"
        "models:\n"
        "  gpt-4.1-mini: {provider: fake, upstream_model: good-model}\n"
        f"  {LLAMA_8B}: {{provider: fake, upstream_model: bad-json-model}}\n"
        "  judge: {provider: fake, upstream_model: judge-model}\n"
        "workloads:\n  extraction: {}\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n",
        encoding="utf-8",
    )
    return path


def _golden_set(folder: Path) -> Path:
    """The small fixture set, as the golden set of the ``extraction`` workload."""
    lines = (FIXTURES / "small.jsonl").read_text(encoding="utf-8").splitlines()
    path = folder / "extraction-golden.jsonl"
    path.write_text(
        "\n".join(line.replace('"workload": "support"', '"workload": "extraction"') for line in lines),
        encoding="utf-8",
    )
    return path


def _org_without_extraction_quality(folder: Path) -> Path:
    """The bundled example profile, minus its stated extraction scores (so measurements can fill them)."""
    raw: dict[str, Any] = yaml.safe_load((EXAMPLES / "org.yaml").read_text(encoding="utf-8"))
    raw["quality"] = [q for q in raw["quality"] if q["workload"] != "extraction"]
    catalog = raw["catalog"]
    catalog["price_files"] = [str((EXAMPLES / p).resolve()) for p in catalog["price_files"]]
    catalog["profiles_dir"] = str((EXAMPLES / catalog["profiles_dir"]).resolve())
    path = folder / "org.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _decide(org: Path, evals: Path, out: Path) -> tuple[dict[str, Any], str]:
    args = ["--org", str(org), "--evals", str(evals), "--out", str(out), "--today", "2026-11-01"]
    result = CliRunner().invoke(decide_command, args, env={"COLUMNS": "200"})  # sources on one line
    assert result.exit_code == 0, result.output
    by_name = {w["name"]: w for w in orjson.loads((out / "decision.json").read_bytes())["workloads"]}
    return by_name["extraction"], result.output


def test_eval_results_set_the_quality_floor_decision(tmp_path: Path) -> None:
    state = ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))
    evals = tmp_path / "evals"
    with serving_in_thread(state) as url:
        run = CliRunner().invoke(
            eval_command,
            ["run", str(_golden_set(tmp_path)), "-c", str(_gateway_config(tmp_path, url)),
             "-m", LLAMA_8B, "--baseline", "gpt-4.1-mini", "--judge", "judge",
             "--out", str(evals), "--no-progress"],
        )  # fmt: skip
    assert run.exit_code in (1, 3), run.output  # the 8B stand-in is not shown non-inferior
    run_id = orjson.loads((evals / "extraction-golden" / "latest.json").read_bytes())["run_id"]
    org = _org_without_extraction_quality(tmp_path)

    before, _ = _decide(org, tmp_path / "no-evals-here", tmp_path / "before")
    after, terminal = _decide(org, evals, tmp_path / "after")

    # Without measurements the 8B model's quality is unknown, so the floor (0.85) cannot exclude it: chosen.
    assert before["recommendation"]["option"].startswith(f"self_hosted:{LLAMA_8B}@")
    unknown = {q["model"]: q for q in before["quality_inputs"]}[LLAMA_8B]
    assert unknown == {
        "model": LLAMA_8B,
        "score": None,
        "status": "unknown",
        "origin": "unknown",
        "source": None,
    }

    # Measured: 8B scores 0.625 (it breaks the JSON cases), below the floor; gpt-4.1-mini 0.875.
    measured = {q["model"]: q for q in after["quality_inputs"]}
    assert measured[LLAMA_8B]["score"] == pytest.approx(0.625) and measured[LLAMA_8B]["origin"] == "eval"
    assert measured[LLAMA_8B]["source"] == f"eval extraction-golden {run_id} (8 cases)"
    assert measured["gpt-4.1-mini"]["score"] == pytest.approx(0.875)
    assert measured["gpt-4.1"]["status"] == "unknown"  # not in the run: still unknown, never assumed
    eights = [o for o in after["options"] if o["model"] == LLAMA_8B and o["kind"] != "hybrid"]
    assert len(eights) == 4  # one managed API, three GPU offers
    for option in eights:
        assert option["quality"] == pytest.approx(0.625)
        assert option["infeasible_reason"] == "quality 0.62 below the floor 0.85"
    assert not after["recommendation"]["option"].startswith(f"self_hosted:{LLAMA_8B}@")
    assert after["recommendation"]["option"] != before["recommendation"]["option"]

    assert f"eval extraction-golden {run_id}" in terminal
    page = (tmp_path / "after" / "decision.html").read_text(encoding="utf-8")
    assert "Quality inputs" in page and f"eval extraction-golden {run_id} (8 cases)" in page


def _record(folder: Path, name: str, run_id: str, entries: list[dict[str, Any]], upstream: str) -> None:
    record = {
        "schema": "modelyard.eval_run/1", "run_id": run_id, "set": name,
        "candidates": {e["model"]: {"upstream_model": upstream, "cases": 10, "errors": 0} for e in entries},
        "quality": entries,
    }  # fmt: skip
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "latest.json").write_bytes(orjson.dumps(record))


def _entry(model: str, score: float, workload: str = "extraction") -> dict[str, Any]:
    return {"workload": workload, "model": model, "score": score, "source": "modelyard eval"}


def test_merge_rules_profile_wins_then_gateway_name_then_newest_run(tmp_path: Path) -> None:
    _record(
        tmp_path, "old", "20260101T000000Z", [_entry("llama-8b", 0.5)], "meta-llama/Llama-3.1-8B-Instruct"
    )
    _record(
        tmp_path, "new", "20260301T000000Z", [_entry("llama-8b", 0.7)], "meta-llama/Llama-3.1-8B-Instruct"
    )
    _record(tmp_path, "named", "20260201T000000Z", [_entry(LLAMA_8B, 0.9)], "some/other-upstream")
    measured = {(q.workload, q.model): q for q in load_eval_quality(tmp_path)}
    assert measured[("extraction", "llama-8b")].score == 0.7  # the newest run
    assert measured[("extraction", "llama-8b")].source == "eval new 20260301T000000Z (10 cases)"
    # Under the catalog name, the run that measured a gateway model *named* so wins over upstream aliases.
    assert measured[("extraction", LLAMA_8B)].score == 0.9
    assert measured[("extraction", "meta-llama/Llama-3.1-8B-Instruct")].source.endswith(", as llama-8b")

    org = load_org(EXAMPLES / "org.yaml")  # states extraction / Llama-3.1-8B-Instruct = 0.88
    merged = merge_quality(org, measured.values())
    stated = merged.quality_of("extraction", LLAMA_8B)
    assert stated is not None and stated.score == 0.88 and stated.source.startswith("illustrative")
    added = merged.quality_of("extraction", "llama-8b")
    assert added is not None and added.score == 0.7
    # Added: llama-8b and its full upstream name; some/other-upstream and other-upstream (the stated pair is
    # not overwritten).
    assert len(merged.quality) == len(org.quality) + 4


def test_no_evals_folder_is_nothing_and_a_broken_record_is_an_error(tmp_path: Path) -> None:
    assert load_eval_quality(tmp_path / "absent") == []
    org = OrgProfile.model_validate(
        {"organisation": "x", "engineering": {"loaded_cost_per_year": 1}, "candidates": {"api": [
            {"provider": "openai", "model": "gpt-4.1-mini"}]},
         "quality": [QualityScore(workload="w", model="m", score=0.5, source="s").model_dump()]}
    )  # fmt: skip
    assert merge_quality(org, []) is org
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "latest.json").write_text('{"schema": "something/else"}')
    with pytest.raises(ConfigError, match=r"bad/latest.json: not a modelyard eval record"):
        load_eval_quality(tmp_path)
    (tmp_path / "bad" / "latest.json").write_bytes(
        orjson.dumps({"schema": "modelyard.eval_run/1", "quality": [_entry("m", 1.5)]})
    )
    with pytest.raises(ConfigError, match=r"quality\[0\]: Input should be less than or equal to 1"):
        load_eval_quality(tmp_path)

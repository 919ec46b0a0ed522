"""Eval and judge calls in the ledger (issue 21 item 5): ``eval run`` over the scripted loopback fake
records every call it makes through the real ledger writer (the default ingester process), with its
purpose and run id and the same costs as the run's record; ``ledger summary`` keeps them apart, and
``decide`` leaves them out of workload volumes and reports what they cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from click.testing import CliRunner

from modelyard.catalog.prices import load_catalog
from modelyard.cli.decide import decide_command
from modelyard.cli.eval import eval_command
from modelyard.cli.ledger import ledger_group
from modelyard.economics.traffic import read_ledger, read_traffic
from modelyard.evals.calls import CallResult, CallTag
from modelyard.evals.metering import Attempt, Trail, call_rows
from modelyard.gateway.targets import Target
from modelyard.ledger.schema import RequestRow
from modelyard.ledger.store import RequestFilter, open_store
from modelyard.ledger.summary import pico_to_usd
from modelyard.providers.base import Adapter, Usage
from tests.fakes.scripted_openai import FIXTURES, ScriptedState, serving_in_thread
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name

MICRO = Decimal("0.000001")
DAY = 86_400.0
#: Gateway traffic in the test ledger: two days, every hour, before ``--today``.
TODAY_TS = 1_790_000_000.0  # 2026-09-20


@pytest.fixture
def state() -> ScriptedState:
    return ScriptedState(answers=orjson.loads((FIXTURES / "answers.json").read_bytes()))


@pytest.fixture
def fake_url(state: ScriptedState) -> Iterator[str]:
    with serving_in_thread(state) as url:
        yield url


def _config(folder: Path, url: str) -> Path:
    # The default ledger writer (its own ingester process): the path the gateway's rows take.
    path = folder / "modelyard.yaml"
    path.write_text(
        f"providers:\n  fast: {{kind: openai_compatible, base_url: '{url}/v1'}}\n"
        "models:\n"
        "  good: {provider: fast, upstream_model: good-model}\n"
        "  flaky: {provider: fast, upstream_model: flaky-model}\n"
        "  judge: {provider: fast, upstream_model: judge-model}\n"
        "workloads:\n  support: {data_class: confidential}\n"
        f"catalog:\n  price_files: ['{FIXTURES / 'prices.yaml'}']\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}'}}\n",
        encoding="utf-8",
    )
    return path


def _eval_run(folder: Path, url: str) -> tuple[Any, dict[str, Any]]:
    args = ["run", str(FIXTURES / "small.jsonl"), "-c", str(_config(folder, url)), "-m", "good", "-m", "flaky",
            "--judge", "judge", "--backoff", "0.001", "--out", str(folder / "evals"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 0, result.output
    return result, orjson.loads((folder / "evals" / "small" / "latest.json").read_bytes())


def _usd(pico: int | None) -> str | None:
    return None if pico is None else str(pico_to_usd(pico).quantize(MICRO))


def test_an_eval_run_records_every_call_with_its_purpose_run_id_and_cost(
    tmp_path: Path, fake_url: str, state: ScriptedState
) -> None:
    result, record = _eval_run(tmp_path, fake_url)
    run_id = record["run_id"]
    assert f"ledger: 17 calls recorded as eval run {run_id}" in result.output
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    rows = store.query(newest_first=False)
    attempts = store.query_attempts()
    store.close()

    # 8 cases x 2 candidates, and one judge call (the one judged case; flaky's answer equals good's).
    assert sorted((r.purpose, r.model) for r in rows) == [("eval", "flaky")] * 8 + [("eval", "good")] * 8 + [
        ("judge", "judge")
    ]
    assert {(r.eval_run_id, r.workload, r.data_class, r.endpoint) for r in rows} == {
        (run_id, "support", "confidential", "chat")
    }
    # Every request the fake received is an attempt row, retries included (flaky answers on its third).
    assert len(attempts) == len(state.received) == 8 * 3 + 8 + 1
    flaky = [r for r in rows if r.model == "flaky"]
    assert {(r.attempts, r.retries, r.status, r.cost_pico_usd, r.priced) for r in flaky} == {
        (3, 2, 200, None, False)  # flaky-model has no price: unpriced, never $0
    }
    first = next(r for r in flaky if r.route == f"eval run {run_id}, case capital-fr")
    statuses = [(a.attempt, a.status, a.purpose) for a in attempts if a.request_id == first.request_id]
    assert statuses == [(1, 429, "eval"), (2, 429, "eval"), (3, 200, "eval")]

    # The same costs as the record: per answer, per candidate, and the judge's spend.
    by_case = {(r.model, r.route): r for r in rows if r.purpose == "eval"}
    for answer in record["results"]:
        row = by_case[(answer["candidate"], f"eval run {run_id}, case {answer['case_id']}")]
        assert _usd(row.cost_pico_usd) == answer["cost_usd"]
        assert (row.input_tokens, row.output_tokens) == (answer["input_tokens"], answer["output_tokens"])
    good = sum(r.cost_pico_usd or 0 for r in rows if r.model == "good")
    assert _usd(good) == record["candidates"]["good"]["cost_usd"]
    [judge] = [r for r in rows if r.purpose == "judge"]
    assert judge.cost_pico_usd and _usd(judge.cost_pico_usd) == record["judge_spent_usd"]

    # A re-run is answered from the cache: nothing spent, nothing recorded.
    again, _ = _eval_run(tmp_path, fake_url)
    assert "ledger: 0 calls recorded" in again.output
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert len(store.query()) == 17
    store.close()


def _gateway_traffic(url: str) -> list[RequestRow]:
    """Two days of the gateway's own answers for workload ``support``, one request an hour."""
    rows = [
        request(i, ts=TODAY_TS - 2 * DAY + i * 3600.0, model="good", upstream_model="good-model")
        for i in range(48)
    ]
    store = open_store(url)
    store.insert(rows, [attempt(i) for i in range(48)])
    store.close()
    return rows


def test_ledger_summary_and_decide_keep_eval_spend_apart(tmp_path: Path, fake_url: str) -> None:
    _, record = _eval_run(tmp_path, fake_url)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    answers = _gateway_traffic(url)

    out = CliRunner().invoke(ledger_group, ["summary", "--db", url, "--json"], catch_exceptions=False).output
    groups = {(g["purpose"], g["model"]): g for g in map(json.loads, out.splitlines())}
    assert {key: g["requests"] for key, g in groups.items()} == {
        ("answer", "good"): 48,
        ("eval", "flaky"): 8,
        ("eval", "good"): 8,
        ("judge", "judge"): 1,
    }
    assert groups[("eval", "good")]["cost_usd"] is not None
    assert groups[("eval", "flaky")]["cost_usd"] is None and groups[("eval", "flaky")]["unpriced"] == 8
    run = ["summary", "--db", url, "--json", "--by", "purpose", "--eval-run", record["run_id"]]
    only_run = [json.loads(line) for line in CliRunner().invoke(ledger_group, run).output.splitlines()]
    assert [(g["purpose"], g["requests"]) for g in only_run] == [("eval", 16), ("judge", 1)]
    table = CliRunner().invoke(ledger_group, ["summary", "--db", url], env={"COLUMNS": "250"}).output
    judge_line = next(line for line in table.splitlines() if "judge" in line)
    assert [cell.strip() for cell in judge_line.split("│")[1:4]] == ["judge", "support", "judge"]

    traffic = read_ledger(url)
    assert sum(h.requests for h in traffic.hours) == len(answers)  # eval and judge calls are not volume
    eval_pico = sum(r.cost_pico_usd or 0 for r in open_store(url).query(RequestFilter(purpose="eval")))
    judge_usd = Decimal(record["judge_spent_usd"])
    assert traffic.quality is not None
    assert (traffic.quality.calls, traffic.quality.unpriced) == (17, 8)
    assert pico_to_usd(traffic.quality.cost_pico_usd).quantize(MICRO) == (
        pico_to_usd(eval_pico) + judge_usd
    ).quantize(MICRO)

    decided = tmp_path / "decision"
    args = [
        "--traffic",
        url,
        "--out",
        str(decided),
        "--today",
        "2026-09-20",
        "--evals",
        str(tmp_path / "none"),
    ]
    result = CliRunner().invoke(decide_command, args)
    assert result.exit_code == 0, result.output
    document = orjson.loads((decided / "decision.json").read_bytes())
    [line] = [i for i in document["inputs"] if i["what"].startswith("Eval and judge calls")]
    cost = pico_to_usd(traffic.quality.cost_pico_usd).quantize(MICRO)
    assert line["detail"] == f"17 calls, ${cost} + 8 unpriced, left out of workload volumes"
    [support] = [w for w in document["workloads"] if w["name"] == "support"]
    assert support["profile"]["requests_observed"] == len(answers)
    assert "Eval and judge calls" in result.output


def test_decide_reads_purpose_from_either_ledger_store(store_url: str) -> None:
    store = open_store(store_url)
    store.insert(
        [
            request(1),
            request(2),
            request(3, purpose="eval", eval_run_id="r", cost_pico_usd=5_000_000),
            request(4, purpose="judge", eval_run_id="r", cost_pico_usd=None, priced=False),
            request(5, purpose="shadow", shadow_of="r1"),
        ],
        [],
    )
    store.close()
    traffic = read_ledger(store_url)
    assert sum(h.requests for h in traffic.hours) == 3  # two answers and the shadow mirror
    assert traffic.quality is not None
    assert (traffic.quality.calls, traffic.quality.cost_pico_usd, traffic.quality.unpriced) == (
        2,
        5_000_000,
        1,
    )


def _priced_target() -> Target:
    price = load_catalog([str(FIXTURES / "prices.yaml")]).price_for("openai_compatible", "good-model")
    assert price is not None  # $1 / $2 per million tokens
    adapter = cast(Adapter, None)  # never called: rows are built from what the call did
    return Target(
        "good", "fast", "openai_compatible", "external", "good-model", "chat", adapter, price, "test-1"
    )


@pytest.mark.parametrize(
    ("attempts", "usage", "expected"),
    [
        # (status, error kind) of each attempt; the answer's usage; (status, error, attempts, retries, cost)
        ([(200, None)], Usage(1000, 500), (200, None, 1, 0, 2_000_000_000)),
        ([(429, "rate_limit_exceeded"), (200, None)], Usage(1000, 500), (200, None, 2, 1, 2_000_000_000)),
        ([(504, "timeout"), (504, "timeout")], None, (504, "timeout", 2, 1, 0)),
    ],
)
def test_call_rows_from_a_dispatched_call(
    attempts: list[tuple[int, str | None]], usage: Usage | None, expected: tuple[Any, ...]
) -> None:
    trail = Trail(ts=1_800_000_000.0, started=10.0)
    for number, (status, error) in enumerate(attempts):
        answered = status == 200
        trail.attempts.append(
            Attempt(1_800_000_000.0 + number, 0.25, status, error, usage if answered else None)
        )
    result = CallResult("ok", 0, 0, None, 250.0, usage=usage)
    tag = CallTag("judge", "support", "case-1")
    row, rows = call_rows("RUN", _priced_target(), tag, trail, result, request_id="eval-1", ended=11.0)
    assert (row.status, row.error_kind, row.attempts, row.retries, row.cost_pico_usd) == expected
    assert (row.purpose, row.eval_run_id, row.workload, row.route) == (
        "judge",
        "RUN",
        "support",
        "eval run RUN, case case-1",
    )
    assert row.latency_ms == 1000.0 and row.upstream_latency_ms == 250.0 * len(attempts)
    assert [a.purpose for a in rows] == ["judge"] * len(attempts)
    assert [a.ts for a in rows] == [1_800_000_000.0 + n for n in range(len(attempts))]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_decide_on_a_ledger_export_leaves_eval_calls_out(tmp_path: Path, fmt: str) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_store(url)
    store.insert([request(1), request(2, purpose="eval", eval_run_id="r"), request(3, purpose="judge")], [])
    store.close()
    path = tmp_path / f"requests.{fmt}"
    args = ["export", "--db", url, "--format", fmt, "--output", str(path)]
    CliRunner().invoke(ledger_group, args, catch_exceptions=False)
    traffic = read_traffic(str(path))
    assert sum(h.requests for h in traffic.hours) == 1
    assert traffic.quality is not None and traffic.quality.calls == 2


def test_a_ledger_export_from_before_purpose_is_all_traffic(tmp_path: Path) -> None:
    """An export written before migration 0005 has no purpose: every row is the gateway's traffic."""
    path = tmp_path / "old.jsonl"
    old = [
        {k: v for k, v in request(i).to_dict().items() if k not in ("purpose", "eval_run_id")} for i in (1, 2)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in old), encoding="utf-8")
    traffic = read_traffic(str(path))
    assert sum(h.requests for h in traffic.hours) == 2 and traffic.quality is None

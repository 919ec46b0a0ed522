"""Golden sets: the JSONL loader (line-numbered errors), default checks, and the importers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelyard.evals.golden import Check, GoldenSetError, dump_cases, load_golden_set, parse_lines
from modelyard.evals.importers import cases_from_ledger, import_openai_evals
from modelyard.ledger.schema import RequestRow
from tests.fakes.scripted_openai import FIXTURES


def test_small_set_loads_in_file_order_with_default_checks() -> None:
    golden = load_golden_set(FIXTURES / "small.jsonl")
    assert golden.name == "small"
    assert [c.id for c in golden.cases][:3] == ["capital-fr", "sum", "invoice-1"]
    by_id = {c.id: c for c in golden.cases}
    assert by_id["capital-fr"].checks == (Check("exact"),)  # expected → exact
    assert by_id["invoice-1"].checks == (Check("json_schema"),)  # schema → json_schema
    assert by_id["sum"].checks == (Check("numeric", {"tolerance": 0}),)
    assert by_id["zip"].tags == ("format",)
    assert golden.workloads == {"support"}


def test_every_bad_line_is_reported_with_its_number() -> None:
    with pytest.raises(GoldenSetError) as caught:
        load_golden_set(FIXTURES / "bad.jsonl")
    message = str(caught.value)
    assert "5 bad line(s)" in message
    assert "bad.jsonl:3: not valid JSON" in message
    assert "bad.jsonl:4: messages: Field required" in message
    assert "bad.jsonl:5: duplicate id 'ok-1' (first on line 1)" in message
    assert "bad.jsonl:6: nothing to check" in message
    assert "bad.jsonl:7: messages.0.role" in message
    assert ":1:" not in message and ":2:" not in message


def test_unknown_keys_are_rejected() -> None:
    line = '{"id": "a", "messages": [{"role": "user", "content": "x"}], "expected": "y", "expectd": "z"}'
    with pytest.raises(GoldenSetError, match=r"t:1: expectd: Extra inputs are not permitted"):
        parse_lines([line], source="t")


def test_an_empty_set_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("// only a comment\n\n")
    with pytest.raises(GoldenSetError, match="no cases"):
        load_golden_set(tmp_path / "empty.jsonl")


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    golden = load_golden_set(FIXTURES / "small.jsonl")
    (tmp_path / "copy.jsonl").write_text(dump_cases(golden.cases))
    again = load_golden_set(tmp_path / "copy.jsonl")
    assert again.cases == golden.cases


def test_openai_evals_import() -> None:
    cases = import_openai_evals(FIXTURES / "openai_evals_samples.jsonl")
    assert [c.id for c in cases] == ["line-1", "line-2"]
    assert cases[0].messages[1] == {"role": "user", "content": "Capital of Italy?"}
    assert cases[0].expected == "Rome" and cases[0].checks == (Check("exact"),)
    assert cases[1].messages == [{"role": "user", "content": "2 + 2 ="}]
    assert cases[1].checks == (Check("exact", {"any_of": ["4", "four"]}),)


def test_openai_evals_bad_lines_are_numbered(tmp_path: Path) -> None:
    source = tmp_path / "s.jsonl"
    source.write_text('{"input": "x", "ideal": "y"}\n{"ideal": "y"}\n{"input": 3, "ideal": "y"}\n')
    with pytest.raises(GoldenSetError) as caught:
        import_openai_evals(source)
    assert "s.jsonl:2: an OpenAI evals sample needs 'input'" in str(caught.value)
    assert "s.jsonl:3: 'input' must be" in str(caught.value)


def _row(request_id: str, status: int, prompt: str | None, completion: str | None) -> RequestRow:
    return RequestRow(
        request_id=request_id, ts=1.0, endpoint="chat", workload="audited", data_class="internal",
        tenant=None, api_key_id=None, model="gpt-4o-mini", provider="openai", provider_kind="openai",
        upstream_model="gpt-4o-mini", status=status, error_kind=None, streamed=False,
        prompt=prompt, completion=completion,
    )  # fmt: skip


def test_cases_from_ledger_take_answered_rows_with_content() -> None:
    messages = [{"role": "user", "content": "hi"}]
    choices = [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]
    rows = [
        _row("r1", 200, orjson.dumps(messages).decode(), orjson.dumps(choices).decode()),
        _row("r2", 200, orjson.dumps(messages).decode(), "streamed text"),  # streams log plain text
        _row("r3", 200, None, None),  # metadata-only row
        _row("r4", 502, orjson.dumps(messages).decode(), None),
    ]
    cases = cases_from_ledger(rows, (Check("similarity"),))
    assert [(c.id, c.expected) for c in cases] == [("r1", "Hello!"), ("r2", "streamed text")]
    assert cases[0].messages == messages and cases[0].workload == "audited"
    assert cases[0].checks == (Check("similarity"),)


def test_a_stream_cut_mid_answer_is_not_a_golden_answer() -> None:
    # A cut stream's row says 200 (what the client got) with error_kind set: its text is truncated.
    messages = orjson.dumps([{"role": "user", "content": "hi"}]).decode()
    cut = _row("r1", 200, messages, "Hel")
    cut.error_kind = "upstream_stream_cut"
    assert [c.id for c in cases_from_ledger([cut, _row("r2", 200, messages, "Hello!")])] == ["r2"]

"""``modelyard eval from-ledger`` end to end: rows written through the real ledger writer into SQLite, read
back by the command, turned into a golden set that loads and validates."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from modelyard.config import load_config
from modelyard.evals.golden import Check, load_golden_set
from modelyard.ledger.writer import Ledger
from tests.ledger_support import request


def _config(folder: Path) -> Path:
    path = folder / "modelyard.yaml"
    path.write_text(
        "providers:\n"
        "  local: {kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1'}\n"
        "models:\n"
        "  gpt-x: {provider: local, upstream_model: gpt-x-2025}\n"
        "workloads:\n"
        "  audited: {log_content: true}\n"
        "  quiet: {}\n"
        "ledger:\n"
        f"  url: 'sqlite:///{folder / 'ledger.db'}'\n",
        encoding="utf-8",
    )
    return path


def _messages(text: str) -> str:
    # As the gateway logs a request: the JSON of its messages.
    return orjson.dumps(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    ).decode()


def _choices(text: str) -> str:
    # As the gateway logs a non-streamed answer: the JSON of the upstream's choices.
    message = {"role": "assistant", "content": text, "refusal": None}
    return orjson.dumps([{"index": 0, "message": message, "finish_reason": "stop"}]).decode()


async def test_from_ledger_builds_a_golden_set_from_logged_content(tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    ledger = Ledger(load_config(config_path).ledger)
    await ledger.start()
    rows = [
        request(1, workload="audited", streamed=False, prompt=_messages("Capital of France?"),
                completion=_choices("Paris")),
        request(2, workload="audited", streamed=True, prompt=_messages("2 + 2?"), completion="4"),
        request(3, workload="audited"),  # logged before content logging was on: metadata only
        request(4, workload="audited", status=502, error_kind="upstream_unavailable",
                prompt=_messages("Capital of Peru?"), completion=None),
        request(5, workload="quiet", prompt=_messages("secret"), completion=_choices("hidden")),
        request(6, workload="audited", streamed=False, prompt=_messages("Largest planet?"),
                completion=_choices("Jupiter")),
    ]  # fmt: skip
    for row in rows:
        ledger.record(row)
    await ledger.close()

    out = tmp_path / "from-ledger.jsonl"
    args = [
        "from-ledger",
        "-c",
        str(config_path),
        "--workload",
        "audited",
        "--check",
        "contains",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 cases" in result.output and "review the expected answers" in result.output

    golden = load_golden_set(out)
    # Newest first; the failed, metadata-only and other-workload rows are left out.
    assert [(c.id, c.expected) for c in golden.cases] == [("r6", "Jupiter"), ("r2", "4"), ("r1", "Paris")]
    first = golden.cases[0]
    assert first.messages == orjson.loads(_messages("Largest planet?"))
    assert first.checks == (Check("contains"),) and first.workload == "audited"
    assert first.tags == ("from-ledger:gpt-x",)
    assert golden.workloads == {"audited"}

    newest = CliRunner().invoke(eval_command, [*args[:-2], "--limit", "1", "-o", str(tmp_path / "one.jsonl")])
    assert newest.exit_code == 0 and [c.id for c in load_golden_set(tmp_path / "one.jsonl").cases] == ["r6"]


async def test_from_ledger_refuses_a_workload_without_content_logging(tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    args = ["from-ledger", "-c", str(config_path), "--workload", "quiet", "-o", str(tmp_path / "x.jsonl")]
    result = CliRunner().invoke(eval_command, args)
    assert result.exit_code == 1 and "does not log content (set log_content: true)" in result.output
    assert not (tmp_path / "x.jsonl").exists()
    empty = CliRunner().invoke(
        eval_command,
        ["from-ledger", "-c", str(config_path), "--workload", "audited", "-o", str(tmp_path / "y")],
    )
    assert empty.exit_code == 1 and "no answered requests with content" in empty.output

"""An eval run stopped by SIGTERM (CI cancelling a job), SIGINT or SIGKILL keeps every answer it received:
the re-run pays again for at most the calls that were in flight (issue 21 item 4), and the ledger holds
every answered call once (item 5).

The run is a real ``modelyard eval run`` process against the scripted fake on loopback; the fake counts
every call it receives, so "paid twice" is measured where the money is spent.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from tests.fakes.scripted_openai import ScriptedState, serving_in_thread, write_eval_config

CASES = 40
CONCURRENCY = 4
STOP_AFTER = 12  # calls received before the signal: fewer than the old 32-answer commit batch

pytestmark = pytest.mark.slow


@pytest.fixture
def fake() -> Iterator[tuple[ScriptedState, str]]:
    state = ScriptedState(slow_s=0.2)
    with serving_in_thread(state) as url:
        yield state, url


def write_set(folder: Path) -> Path:
    lines = [
        orjson.dumps(
            {"id": f"c{i}", "messages": [{"role": "user", "content": f"question {i}"}], "expected": "x"}
        ).decode()
        for i in range(CASES)
    ]
    path = folder / "long.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cached_answers(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 60  # a guard against a hung process, not a speed assertion
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_repays_at_most_the_calls_in_flight(
    tmp_path: Path, fake: tuple[ScriptedState, str], signum: signal.Signals
) -> None:
    state, url = fake
    config, golden, cache = write_eval_config(tmp_path, url), write_set(tmp_path), tmp_path / "cache.db"
    args = ["run", str(golden), "-c", str(config), "-m", "slow", "--concurrency", str(CONCURRENCY),
            "--cache", str(cache), "--out", str(tmp_path / "evals"), "--no-progress"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "eval", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: len(state.received) >= STOP_AFTER, f"{STOP_AFTER} calls")
        process.send_signal(signum)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    first_run_calls = len(state.received)
    assert first_run_calls < CASES  # it really was stopped mid-run

    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 128 + signum, err.decode()
        assert f"interrupted by {signum.name}" in err.decode() and "Traceback" not in err.decode()
    kept = cached_answers(cache)
    assert kept >= first_run_calls - CONCURRENCY  # every answer received is kept

    resumed = CliRunner().invoke(eval_command, args)
    assert resumed.exit_code == 0, resumed.output
    assert f"{CASES - kept} model calls, {kept} answers from the cache" in resumed.output
    assert len(state.received) <= CASES + CONCURRENCY  # paid twice: at most the calls in flight
    # Every answer the first run received was spooled for the ledger before it was cached, so even after
    # SIGKILL (the resumed run's writer replays the leftover spool) the ledger holds each answer once.
    # Calls abandoned in flight are in neither: whether the provider billed them is unknown.
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        recorded = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT eval_run_id) FROM requests WHERE purpose = 'eval'"
        )
        assert recorded.fetchone() == (CASES, 2)

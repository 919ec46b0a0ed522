"""``modelyard serve --workers 2`` as real processes on loopback: both workers answer on one port, a
worker killed with ``kill -9`` mid-load is restarted, and every answered request has its ledger row
(the killed worker's spool is stored while the others keep serving); SIGTERM stops everything cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState, free_port, serve_app
from tests.test_gateway_process import chat, ledger_ids, wait_healthy, write_config

pytestmark = pytest.mark.slow

STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def supervisor(config: Path, port: int, log: Path, workers: int = 2) -> subprocess.Popen[bytes]:
    env = {**os.environ, "UP_KEY": fake_openai.API_KEY}
    command = [sys.executable, "-m", "modelyard", "-v", "serve", "-c", str(config), "--port", str(port)]
    with log.open("ab") as sink:
        return subprocess.Popen([*command, "--workers", str(workers)], stdout=sink, stderr=sink, env=env)


def started(log: Path) -> list[tuple[int, int]]:
    """(slot, pid) of every worker start the supervisor logged, in order."""
    return [(int(s), int(p)) for s, p in STARTED.findall(log.read_text())]


def serving(log: Path) -> set[int]:
    """The pids of the workers that said they listen (a started worker takes a moment, longer on a busy
    machine; until one listens, connections go to the others, or are refused when none does)."""
    return {int(pid) for pid in re.findall(r"worker (\d+) serving", log.read_text())}


async def load(url: str, until: asyncio.Event, answered: list[str], clients: int = 8) -> None:
    """``clients`` loops of requests, each on a new connection (so the kernel hands them to either
    worker), until ``until`` is set; the ids of answers received whole go to ``answered``."""

    async def client(i: int) -> None:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            n = 0
            while not until.is_set():
                rid = await chat(session, url, stream=(i + n) % 2 == 0)
                if rid is not None:
                    answered.append(rid)
                n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))


async def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_sigkilled_worker_is_restarted_and_loses_no_answered_row(tmp_path: Path) -> None:
    state = FakeState()
    state.scenario, state.delay_s = "slow", 0.02  # requests stay in flight long enough to be cut by the kill
    async with serve_app(fake_openai.create_app(state)) as upstream:
        # Flushes far apart: while the test runs, rows reach the database only through the dead worker's
        # spool being taken over (its ingester's last pass, the restarted worker's first).
        config = write_config(tmp_path, upstream, flush_ms=60_000)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        process = supervisor(config, port, log)
        try:
            await wait_healthy(url, process, log)
            await wait_for(lambda: len(started(log)) == 2, 10, "two workers")
            (slot, victim), _ = started(log)
            answered: list[str] = []
            done = asyncio.Event()
            clients = asyncio.create_task(load(url, done, answered))
            await wait_for(lambda: len(answered) >= 100, 30, "answers before the kill")
            os.kill(victim, signal.SIGKILL)
            await wait_for(lambda: len(started(log)) == 3, 15, "the killed worker's restart")
            assert started(log)[2][0] == slot
            before = len(answered)
            await wait_for(lambda: len(answered) >= before + 100, 30, "answers after the restart")
            # The killed worker's rows are stored while the gateway serves (nothing else flushes yet).
            db = tmp_path / "ledger.db"
            await wait_for(lambda: len(ledger_ids(db)) > 0, 15, "the killed worker's rows")
            done.set()
            await clients
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    recorded = ledger_ids(tmp_path / "ledger.db")
    assert set(answered) <= recorded, f"{len(set(answered) - recorded)} answered requests have no row"
    assert len(set(answered)) == len(answered)
    assert "signal 9" in log.read_text()
    assert list((tmp_path / "ledger.db.spool").glob("*.jsonl")) == []


async def test_a_worker_failing_at_start_up_stops_the_supervisor(tmp_path: Path) -> None:
    """A budget store that cannot be opened: restarting would fail forever, so the supervisor exits 1."""
    config = write_config(tmp_path, "http://127.0.0.1:9", flush_ms=50)
    raw = yaml.safe_load(config.read_text())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    raw["governance"] = {"store": {"kind": "sqlite", "path": str(blocker / "budgets.db")}}
    config.write_text(yaml.safe_dump(raw))
    log = tmp_path / "serve.log"
    process = supervisor(config, free_port(), log)
    try:
        code = await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 1
    text = log.read_text()
    assert "governance.store: cannot open the sqlite budget store" in text
    assert "failed at start-up" in text


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its new parent to reap it counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream:
        config = write_config(tmp_path, upstream, flush_ms=50)
        port = free_port()
        log = tmp_path / "serve.log"
        process = supervisor(config, port, log)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}", process, log)
            await wait_for(lambda: len(started(log)) == 2, 10, "two workers")
            pids = [pid for _, pid in started(log)]
            process.kill()  # no chance to stop its workers itself
            process.wait()
            await wait_for(lambda: all(gone(pid) for pid in pids), 30, "the orphaned workers to stop")
        finally:
            for _, pid in started(log):
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_workers_still_starting_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """Killed before its workers listen (they are still importing): each learns its supervisor's pid from
    the environment, so one whose parent is already gone when it asks Linux to be told stops at once."""
    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream:
        config = write_config(tmp_path, upstream, flush_ms=50)
        log = tmp_path / "serve.log"
        process = supervisor(config, free_port(), log)
        try:
            await wait_for(lambda: len(started(log)) == 2, 20, "two workers")
            pids = [pid for _, pid in started(log)]
            process.kill()
            process.wait()
            await wait_for(lambda: all(gone(pid) for pid in pids), 30, "the orphaned workers to stop")
            assert not serving(log), "killed before any worker listened"
        finally:
            for _, pid in started(log):
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("governance", "says"),
    [
        ({"store": {"kind": "memory"}}, "kind 'memory' keeps budgets inside one process"),
        (
            {"rate_limits_in": "limits", "store": {"kind": "sqlite", "path": "x.db"}},
            "rate_limits_in 'limits'",
        ),
    ],
)
def test_workers_refuse_budget_state_that_only_one_process_would_see(
    tmp_path: Path, governance: dict[str, object], says: str
) -> None:
    from click.testing import CliRunner

    from modelyard.cli.serve import serve_command

    config = write_config(tmp_path, "http://127.0.0.1:9", flush_ms=50)
    raw = yaml.safe_load(config.read_text())
    raw["governance"] = governance
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(serve_command, ["-c", str(config), "--workers", "2", "--port", "0"])
    assert result.exit_code == 1
    assert says in result.output


@pytest.mark.parametrize("kind", ["sqlite", "mapped"])
async def test_a_worker_killed_mid_request_leaves_no_reservation_past_its_ttl(
    tmp_path: Path, kind: str
) -> None:
    """An embedded budget store shared by 2 workers: requests in flight on workers killed with kill -9
    keep their holds only until reservation_ttl_s; then the restarted workers' sweeps release them."""
    from modelyard.config.governance import GovernanceConfig
    from modelyard.governance.governor import Governor
    from modelyard.governance.model import Subject
    from modelyard.governance.runtime import open_budget_store

    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream:
        config = write_config(tmp_path, upstream, flush_ms=50)
        raw = yaml.safe_load(config.read_text())
        governance = {
            "store": {"kind": kind, "path": str(tmp_path / "budgets.db")},
            "reservation_ttl_s": 2,
            "budgets": [
                {
                    "name": "w-req",
                    "scope": "workload",
                    "unit": "requests",
                    "limit": 10**6,
                    "window": {"kind": "day"},
                }
            ],
        }
        raw["governance"] = governance
        config.write_text(yaml.safe_dump(raw))
        port, log = free_port(), tmp_path / "serve.log"
        url = f"http://127.0.0.1:{port}"
        process = supervisor(config, port, log)
        config_read = GovernanceConfig.model_validate(governance)
        store = open_budget_store(config_read.store)
        governor = Governor(config_read, store)

        def reserved() -> int:
            (status,) = governor.status(Subject(workload="w"))
            return status.reserved

        try:
            await wait_healthy(url, process, log)
            await wait_for(lambda: len(started(log)) == 2, 10, "two workers")
            state.scenario, state.delay_s = "slow", 3.0
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                in_flight = [asyncio.create_task(chat(session, url, stream=False)) for _ in range(20)]
                await wait_for(lambda: reserved() == 20, 10, "20 requests held")
                for _, pid in started(log):  # both: wherever the 20 landed, they are cut
                    os.kill(pid, signal.SIGKILL)
                assert await asyncio.gather(*in_flight) == [None] * 20
                assert reserved() == 20, "the killed workers' requests hold their estimates"
                await wait_for(lambda: len(started(log)) == 4, 15, "the restarts")
                restarted = {pid for _, pid in started(log)[2:]}
                await wait_for(lambda: restarted <= serving(log), 30, "the restarted workers to listen")
                state.scenario, state.delay_s = "text", 0.0
                await asyncio.sleep(2.5)  # past the TTL
                for _ in range(4):  # sweeps run as requests arrive (either worker's sweeps the store)
                    assert await chat(session, url, stream=False) is not None
                    await asyncio.sleep(0.6)
                assert reserved() == 0
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 60) == 0
        finally:
            store.close()
            if process.poll() is None:
                process.kill()
                process.wait()

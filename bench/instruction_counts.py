"""Instructions per request (valgrind's callgrind): a noise-free A/B of gateway code changes.

On this shared 2-core VM, req/s and CPU µs per request of the same code move ±15 % from run to run, so a
5 % change cannot be seen in the overhead benchmark. Instruction counts do not depend on the neighbours:
this runs each system under callgrind (children traced, so modelyard's ledger ingester counts too) behind
the same nginx upstream, zeroes the counters after a warm-up, drives it with wrk at 16 connections, waits
for the spool to drain, and divides the instructions of each process by the requests answered.

    .venv/bin/python bench/instruction_counts.py forwarder,modelyard,/path/to/other/checkout [--seconds 10]

A path names another checkout (its ``src/`` is put first on ``PYTHONPATH``), e.g. ``git worktree add
/tmp/before HEAD~1``. Valgrind slows everything ~50x, so timers and periodic work weigh more per request
than at full speed: compare systems within one run, not across runs. Needs ``apt-get install valgrind``.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import gateway_overhead as bench
from overhead_harness import Process, ensure_debian_tools, log, run_wrk, wait_until_answering


def callgrind_totals(directory: Path) -> dict[str, int]:
    """Instructions per process id from the dump files in ``directory``."""
    totals: dict[str, int] = {}
    for path in glob.glob(str(directory / "*.out*")):
        pid = Path(path).name.split(".")[0]
        with open(path, errors="replace") as file:
            for line in file:
                if line.startswith(("summary:", "totals:")):
                    totals[pid] = totals.get(pid, 0) + int(line.split()[1])
                    break
    return totals


def start_under_callgrind(tmp: Path, upstream: bench.Upstream, system: str, out: Path) -> bench.Running:
    checkout = None if system in ("forwarder", "lean", "modelyard") else Path(system).resolve()
    env = {"PYTHONPATH": str(checkout / "src")} if checkout else {}
    prefix = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/%p.out"]
    original = Process.start

    def start(
        name: str, argv: list[str], cpu: str, log_path: Path, extra: dict[str, str] | None = None
    ) -> Process:
        return original(name, prefix + argv, cpu, log_path, {**(extra or {}), **env})

    bench.Process.start = start  # type: ignore[method-assign]
    try:
        tmp.mkdir()
        if system == "forwarder":
            return bench.start_forwarder(tmp, upstream)
        if system == "lean":
            return bench.start_lean_forwarder(tmp, upstream)
        return bench.start_modelyard(tmp, upstream)
    finally:
        bench.Process.start = original  # type: ignore[method-assign]


def measure(system: str, index: int, tmp: Path, upstream: bench.Upstream, seconds: float) -> None:
    out = tmp / f"callgrind-{index}"
    out.mkdir()
    running = start_under_callgrind(tmp / f"system-{index}", upstream, system, out)
    subject = bench.Subject(system, running, tmp / f"ids-{index}")
    assert running.process is not None
    try:
        wait_until_answering(
            running.process, running.base_url + bench.CHAT_PATH, bench.CHAT.read_bytes(), 600
        )
        for phase, body in (("json", bench.CHAT), ("stream", bench.CHAT_STREAM)):
            run_wrk(running.base_url, bench.CHAT_PATH, body, connections=8, seconds=3)  # warm-up
            subject.wait_for_ledger()
            subprocess.run(["callgrind_control", "--zero"], capture_output=True, check=False)
            load = run_wrk(running.base_url, bench.CHAT_PATH, body, connections=16, seconds=seconds)
            subject.wait_for_ledger()
            time.sleep(1)  # the ingester commits and deletes a segment after the spool file is gone
            for path in glob.glob(str(out / "*.out*")):
                os.remove(path)
            subprocess.run(["callgrind_control", "--dump"], capture_output=True, check=False)
            time.sleep(2)
            per_process = {pid: n // load.requests for pid, n in callgrind_totals(out).items()}
            print(
                f"{phase:6} {system:30} {load.requests:6} requests  "
                f"{sum(per_process.values()):>10,} instructions/request  (by process: {per_process})",
                flush=True,
            )
    finally:
        running.process.stop(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("systems", help="comma-separated: forwarder, modelyard, or paths of other checkouts")
    parser.add_argument("--seconds", type=float, default=10, help="measured load per phase (default 10)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    ensure_debian_tools()
    with tempfile.TemporaryDirectory(prefix="modelyard-instructions-") as name:
        tmp = Path(name)
        nginx, upstream = bench.start_nginx(tmp)
        try:
            for index, system in enumerate(s for s in args.systems.split(",") if s):
                log(f"{system}: under callgrind")
                measure(system, index, tmp, upstream, args.seconds)
        finally:
            nginx.stop()


if __name__ == "__main__":
    main()

"""Where does modelyard spend its time per request? py-spy samples it under the benchmark's load.

Starts the same nginx upstream and modelyard (ledger on) as gateway_overhead.py, drives it with wrk at 64
connections (JSON, or streaming with ``--stream``), and records py-spy's collapsed stacks. Prints the
functions with the most inclusive and the most self time, and keeps the raw stacks (for a flame graph:
``py-spy``'s speedscope output or any collapsed-stack viewer) in bench/results/.

    .venv/bin/python bench/profile_gateway.py [--stream] [--seconds 20]

py-spy is installed on first use into bench/.venv-profile (its own virtualenv, gitignored).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import gateway_overhead as bench
from overhead_harness import BENCH, ensure_debian_tools, log, run_wrk, wait_until_answering

PROFILE_VENV = BENCH / ".venv-profile"
PY_SPY_VERSION = "0.4.3"


def py_spy() -> Path:
    binary = PROFILE_VENV / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PROFILE_VENV)], check=True)
        subprocess.run(
            [str(PROFILE_VENV / "bin" / "pip"), "install", "-q", f"py-spy=={PY_SPY_VERSION}"], check=True
        )
    return binary


def frame_name(frame: str) -> str:
    """``handler (modelyard/http/app.py:82)`` → ``modelyard/http/app.py:handler`` (line numbers dropped)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def summarise(collapsed: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive (function and what it calls):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self (the function's own code):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stream", action="store_true", help="profile the streaming request")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    ensure_debian_tools()
    spy = py_spy()
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    collapsed = out_dir / f"profile-{'stream' if args.stream else 'json'}.txt"
    with tempfile.TemporaryDirectory(prefix="modelyard-profile-") as tmp_name:
        tmp = Path(tmp_name)
        nginx, upstream = bench.start_nginx(tmp)
        running = bench.start_modelyard(tmp, upstream)
        assert running.process is not None
        try:
            wait_until_answering(
                running.process, running.base_url + bench.CHAT_PATH, bench.CHAT.read_bytes(), 30
            )
            body = bench.CHAT_STREAM if args.stream else bench.CHAT
            run_wrk(running.base_url, bench.CHAT_PATH, body, connections=64, seconds=3)  # warm-up
            record = [
                str(spy),
                "record",
                "--pid",
                str(running.process.pid),
                "--format",
                "raw",
                "--rate",
                "250",
            ]
            record += ["--duration", str(args.seconds), "--output", str(collapsed), "--nonblocking"]
            log(f"profiling modelyard for {args.seconds}s under 64 connections")
            spy_done = threading.Thread(
                target=subprocess.run, args=(record,), kwargs={"capture_output": True}
            )
            spy_done.start()
            load = run_wrk(running.base_url, bench.CHAT_PATH, body, connections=64, seconds=args.seconds + 2)
            spy_done.join()
        finally:
            running.process.stop()
            nginx.stop()
    print(f"{load.rps:,.0f} req/s while profiled (py-spy's sampling slows it a little)\n")
    print(summarise(collapsed, args.top))
    print(f"\ncollapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()

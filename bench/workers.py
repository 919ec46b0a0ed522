"""Requests per second of ``modelyard serve --workers 1`` against ``--workers 2``, in the same run.

The fake upstream is nginx answering a fixed chat completion (``bench/nginx``, as in gateway_overhead.py);
the load is wrk with ``bench/wrk/bench.lua``, keep-alive connections, JSON requests; the gateway runs with
its SQLite ledger (the ingester process on) and, with ``--governance``, a SQLite budget store and one
tenant budget, so every request also reserves and settles.

How the 2 cores are shared: nothing is pinned. The gateway's workers, their ledger ingesters (SCHED_IDLE),
nginx and wrk all run on both cores, as they would on a 2-core host running its own load. One worker
leaves the second core to nginx and wrk; two workers compete with them, so the ratio printed is a lower
bound of what two workers give on a machine where the load comes from elsewhere. The CPU seconds each
part used are printed beside the figures, so the split can be read off.

Other sessions on the machine: Linux (``sched_autogroup``) shares the CPU between *sessions* first, and
all of ``serve --workers 2`` is one session, so while other sessions keep the cores busy the gateway gets
its session's share whatever its worker count, and the ratio says nothing about the workers. ``--favour``
(root) gives this run's sessions the largest autogroup weight for its duration.

    .venv/bin/python bench/workers.py                      # 3 rounds of 10 s per worker count
    .venv/bin/python bench/workers.py --rounds 1 --seconds 5 --governance
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_overhead import CHAT, start_nginx
from overhead_harness import (
    BENCH,
    REPO,
    Process,
    cpu_seconds,
    free_port,
    loadavg,
    log,
    process_tree,
    wait_until_answering,
)

ALL_CPUS = "0-1"


def write_config(tmp: Path, upstream_port: int, workers: int, governance: bool) -> Path:
    db = tmp / f"ledger-{workers}.db"
    text = f"""
providers:
  up: {{kind: openai, base_url: "http://127.0.0.1:{upstream_port}/v1", api_key_env: BENCH_UPSTREAM_KEY}}
models:
  bench-json: {{provider: up, upstream_model: gpt-4o-mini}}
workloads:
  bench: {{data_class: internal, model: bench-json}}
server: {{default_workload: bench}}
ledger: {{url: "sqlite:///{db}"}}
"""
    if governance:
        text += f"""
governance:
  store: {{kind: sqlite, path: "{tmp / f"budgets-{workers}.db"}"}}
  budgets:
    - {{name: bench-usd, scope: tenant, unit: usd, limit: "1000000", window: {{kind: month}}}}
"""
    path = tmp / f"workers-{workers}.yaml"
    path.write_text(text)
    return path


def wrk(url: str, connections: int, seconds: int, threads: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_BODY=str(CHAT), BENCH_PATH="/v1/chat/completions", BENCH_DELAY_MS="0")
    argv = ["taskset", "-c", ALL_CPUS, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", str(BENCH / "wrk" / "bench.lua"), url]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")
    import json

    raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    raw["rps"] = raw["requests"] / (raw["duration_us"] / 1e6)
    return raw


def favour(pid: int, args: argparse.Namespace) -> None:
    """With ``--favour``: raise the scheduling weight of ``pid``'s session (Linux autogroup), so that
    this run gets the cores even while other sessions keep the machine busy (see the module docstring)."""
    if not args.favour:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text("-19")
    except OSError as exc:
        log(f"cannot favour pid {pid}: {exc}")


def busy_cores() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def measure(
    tmp: Path, upstream_port: int, nginx: Process, workers: int, args: argparse.Namespace
) -> dict[str, float]:
    config = write_config(tmp, upstream_port, workers, args.governance)
    port = free_port()
    argv = [str(REPO / ".venv" / "bin" / "modelyard"), "serve", "-c", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {"BENCH_UPSTREAM_KEY": "sk-upstream-dummy"}
    gateway = Process.start(f"workers-{workers}", argv, ALL_CPUS, tmp / f"workers-{workers}.log", env)
    url = f"http://127.0.0.1:{port}"
    favour(gateway.pid, args)
    try:
        wait_until_answering(gateway, url + "/v1/chat/completions", CHAT.read_bytes(), 60)
        time.sleep(1.0)  # every worker up (the first answer needs only one)
        wrk(url, args.connections, 2, args.threads)  # warm-up
        # cpu_seconds counts a process and all its descendants (workers, ingesters; nginx's workers).
        gateway_cpu, nginx_cpu, started = cpu_seconds(gateway.pid), cpu_seconds(nginx.pid), time.monotonic()
        machine = busy_cores()
        result = wrk(url, args.connections, args.seconds, args.threads)
        wall = time.monotonic() - started
        busy, total = (b - a for a, b in zip(machine, busy_cores(), strict=True))
        gateway_cpu = cpu_seconds(gateway.pid) - gateway_cpu
        nginx_cpu = cpu_seconds(nginx.pid) - nginx_cpu
    finally:
        gateway.stop(120)
    errors = sum(result["errors"].values())
    return {
        "rps": result["rps"],
        "p50_ms": result["latency_us"]["p50"] / 1000,
        "p99_ms": result["latency_us"]["p99"] / 1000,
        "errors": errors,
        "gateway_cores": gateway_cpu / wall,
        "nginx_cores": nginx_cpu / wall,
        # Everything else (wrk, and whatever else runs on the machine) is the rest of the busy cores.
        "busy_cores": busy / total * (os.cpu_count() or 1),
        "cpu_us_per_request": gateway_cpu / result["requests"] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--governance", action="store_true", help="a SQLite budget on every request")
    parser.add_argument(
        "--favour",
        action="store_true",
        help="give this run's sessions (gateway, nginx, wrk) the largest autogroup weight (root)",
    )
    args = parser.parse_args()
    favour(os.getpid(), args)  # wrk runs in this session
    log(f"load average before: {loadavg()}; cores: {os.cpu_count()}")
    figures: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="modelyard-workers-") as name:
        tmp = Path(name)
        nginx, upstream = start_nginx(tmp)
        favour(nginx.pid, args)
        # nginx was pinned to the load generator's CPU by start_nginx: let it use both, like the rest.
        for pid in process_tree(nginx.pid):
            subprocess.run(
                ["taskset", "-a", "-p", "-c", ALL_CPUS, str(pid)], capture_output=True, check=False
            )
        try:
            for round_no in range(args.rounds):
                for workers in (1, 2):  # interleaved, so a change in the machine's load hits both
                    got = measure(tmp, upstream.port, nginx, workers, args)
                    figures[workers].append(got)
                    log(
                        f"round {round_no + 1} --workers {workers}: {got['rps']:.0f} req/s, p50 "
                        f"{got['p50_ms']:.2f} ms, p99 {got['p99_ms']:.2f} ms, {got['errors']:.0f} errors, "
                        f"gateway {got['gateway_cores']:.2f} cores ({got['cpu_us_per_request']:.0f} µs CPU "
                        f"per request), nginx {got['nginx_cores']:.2f}, machine busy {got['busy_cores']:.2f}"
                    )
        finally:
            nginx.stop()
    one = statistics.median(f["rps"] for f in figures[1])
    two = statistics.median(f["rps"] for f in figures[2])
    print(f"load average after: {loadavg()}")
    print(
        f"{'workers':>8} {'req/s (median)':>15} {'gateway cores':>14} {'CPU µs/req':>11}"
        f" {'nginx cores':>12} {'machine busy':>13}"
    )
    for workers, runs in figures.items():
        med = {k: statistics.median(f[k] for f in runs) for k in runs[0]}
        print(
            f"{workers:>8} {med['rps']:>15.0f} {med['gateway_cores']:>14.2f} {med['cpu_us_per_request']:>11.0f}"
            f" {med['nginx_cores']:>12.2f} {med['busy_cores']:>13.2f}"
        )
    print(f"--workers 2 / --workers 1: {two / one:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    main()

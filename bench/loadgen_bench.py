"""How many streamed requests per second the load generator of ``bench-endpoint`` sustains on one core.

The endpoint benchmark is only meaningful if the load generator is not the bottleneck (issue #7: at least
2,000 streamed requests/s on one core). To measure the generator and not the fake, the fake is nginx
answering every ``POST /v1/chat/completions`` with one fixed, vLLM-shaped SSE stream (a role chunk,
``--tokens`` content chunks, a finish chunk, a usage chunk, ``data: [DONE]``) and ``GET /v1/models`` with
its model: several nginx workers on the other core(s), far faster than any Python client. The generator
runs the real code path — ``run_sweep``: probe, then one closed-loop level — in its own process pinned
with ``taskset -c 0``, on uvloop as the CLI does.

    .venv/bin/python bench/loadgen_bench.py [--runs 3] [--seconds 5] [--concurrency 64] [--tokens 8]

Each run prints the requests/s completed, the generator's CPU seconds per request (``getrusage`` over
the level) and so its ceiling on one core (requests per CPU-second: what it would reach with the core to
itself), nginx's share of its core(s) (well under 100% means nginx was not the limit), and
``/proc/loadavg`` before the run. The machine is shared, so it runs ``--runs`` times and reports the best
and the median. nginx comes from Debian (``apt-get install -y nginx-light``); it is installed when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench/fast-fake"
CLIENT_CPU = 0
#: Issue #7: one core of the load generator sustains at least this many streamed requests/s.
TARGET = 2000

NGINX_CONF = """\
worker_processes @WORKERS@;
worker_cpu_affinity auto @CPUMASK@;
daemon off;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/body;
    proxy_temp_path @PREFIX@/proxy;
    fastcgi_temp_path @PREFIX@/fastcgi;
    uwsgi_temp_path @PREFIX@/uwsgi;
    scgi_temp_path @PREFIX@/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
    server {
        listen 127.0.0.1:@PORT@ reuseport;
        # nginx serves files only to GET (POST gets 405), and a `return` body must fit in 4 KB of config:
        # so the stream is a file, reached by turning the 405 into an internal GET redirect answered 200.
        location = /v1/chat/completions {
            error_page 405 =200 /stream.sse;
            root @PREFIX@;
            try_files /stream.sse =404;
        }
        location = /stream.sse {
            internal;
            root @PREFIX@;
            default_type text/event-stream;
        }
        location = /v1/models {
            default_type application/json;
            return 200 '@MODELS@';
        }
    }
}
"""


def sse_body(tokens: int) -> str:
    """A vLLM-shaped stream: role chunk, ``tokens`` content chunks, finish chunk, usage chunk, [DONE]."""
    head = f'{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1763900000,"model":"{MODEL}",'

    def chunk(delta: str, finish: str = "null") -> str:
        choice = f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}'
        return f'data: {head}"choices":[{choice}]}}\n\n'

    usage = f'"usage":{{"prompt_tokens":40,"completion_tokens":{tokens},"total_tokens":{40 + tokens}}}'
    parts = [chunk('{"role":"assistant","content":""}')]
    parts += [chunk('{"content":" tok"}') for _ in range(tokens)]
    parts.append(chunk("{}", '"length"'))
    parts.append(f'data: {head}"choices":[],{usage}}}\n\n')
    return "".join(parts) + "data: [DONE]\n\n"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    print("installing nginx-light with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=True, env=env)
    return "/usr/sbin/nginx"


def start_nginx(
    prefix: Path, port: int, tokens: int, cpus: list[int], workers: int
) -> subprocess.Popen[bytes]:
    models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "nginx"}]})
    mask = " ".join(format(1 << cpu, "b") for cpu in cpus)
    config = NGINX_CONF
    for key, value in {"WORKERS": str(workers), "CPUMASK": mask, "PREFIX": str(prefix), "PORT": str(port),
                       "MODELS": models}.items():  # fmt: skip
        config = config.replace(f"@{key}@", value)
    (prefix / "stream.sse").write_text(sse_body(tokens))
    prefix.chmod(0o755)  # nginx's workers run as an unprivileged user: let them read the stream
    (prefix / "nginx.conf").write_text(config)
    conf, log = str(prefix / "nginx.conf"), str(prefix / "error.log")
    argv = [nginx_binary(), "-p", str(prefix), "-c", conf, "-e", log]
    taskset = ["taskset", "-c", ",".join(map(str, cpus))]
    process = subprocess.Popen(taskset + argv, stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"nginx did not start: {(prefix / 'error.log').read_text()[-500:]}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes, from /proc/PID/stat."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def nginx_workers(master: int) -> list[int]:
    # taskset execs nginx, so the process started is nginx's master and its children are the workers.
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


# ------------------------------------------------------------------------------ the measured process


def measure(url: str, seconds: float, concurrency: int, tokens: int) -> dict[str, float]:
    """One closed-loop level through ``run_sweep``; CPU from getrusage between the level's hooks."""
    import asyncio

    import uvloop

    from modelyard.benchmark import Endpoint, LevelStats, Slo, concurrency_plan, run_sweep
    from modelyard.benchmark.loadgen import LevelSpec
    from modelyard.benchmark.sweep import Progress
    from modelyard.benchmark.workload import fixed_lengths

    class CpuClock(Progress):
        cpu = 0.0

        def level_started(self, spec: LevelSpec, index: int, total: int) -> None:
            self.cpu = -_rusage_cpu()

        def level_done(self, stats: LevelStats) -> None:
            self.cpu += _rusage_cpu()

    clock = CpuClock()
    plan = concurrency_plan([concurrency], max_requests=10**9, duration_s=seconds)
    lengths = fixed_lengths(40, tokens)
    run = run_sweep(Endpoint(url + "/v1", MODEL), plan, lengths, Slo(), asyncio.Event(), clock)
    level = uvloop.run(run).levels[0]
    return {"requests": level.requests, "errors": level.errors, "requests_per_s": level.requests_per_s,
            "window_s": level.window_s, "cpu_s": clock.cpu, "output_tokens_mean": level.output_tokens_mean,
            "ttft_p50_ms": level.ttft_p50_ms, "e2e_p50_ms": level.e2e_p50_ms}  # fmt: skip


def _rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------ the driver


def one_run(url: str, args: argparse.Namespace, nginx_pids: list[int]) -> dict[str, float]:
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    nginx_before = cpu_seconds(nginx_pids)
    options = [
        "--seconds",
        str(args.seconds),
        "--concurrency",
        str(args.concurrency),
        "--tokens",
        str(args.tokens),
    ]
    argv = ["taskset", "-c", str(CLIENT_CPU), sys.executable, __file__, "--measure", url, *options]
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    run: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    run["nginx_cpu_share"] = (cpu_seconds(nginx_pids) - nginx_before) / run["window_s"]
    run["loadavg_1m"] = float(loadavg[0])
    run["cpu_ms_per_request"] = 1000 * run["cpu_s"] / run["requests"]
    run["ceiling_per_core"] = run["requests"] / run["cpu_s"]
    share = run["cpu_s"] / run["window_s"]
    print(
        f"  {run['requests_per_s']:6,.0f} req/s completed, {run['errors']:.0f} errors; client: "
        f"{share:4.0%} of core {CLIENT_CPU}, {run['cpu_ms_per_request'] * 1000:3.0f} µs CPU/request, "
        f"ceiling {run['ceiling_per_core']:6,.0f} req/s/core; nginx {run['nginx_cpu_share']:4.0%} of a "
        f"core; loadavg {' '.join(loadavg)}",
        flush=True,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=8, help="content chunks per answer")
    parser.add_argument("--nginx-workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, str(ROOT / "src"))
        print(json.dumps(measure(args.measure, args.seconds, args.concurrency, args.tokens)))
        return
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = [c for c in cores if c != CLIENT_CPU] or [CLIENT_CPU]
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
        port = _free_port()
        nginx = start_nginx(Path(tmp), port, args.tokens, server_cpus, args.nginx_workers)
        try:
            print(
                f"load generator: 1 process on core {CLIENT_CPU} (taskset), uvloop, concurrency "
                f"{args.concurrency}, {args.tokens} content chunks per answer, {args.seconds:g} s per run; "
                f"nginx: {args.nginx_workers} workers on core(s) {server_cpus}; "
                f"{os.cpu_count()} cores, shared"
            )
            runs = [
                one_run(f"http://127.0.0.1:{port}", args, nginx_workers(nginx.pid)) for _ in range(args.runs)
            ]
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    for name, key in (("completed req/s", "requests_per_s"), ("ceiling req/s per core", "ceiling_per_core")):
        values = [r[key] for r in runs]
        print(f"{name:>24}: best {max(values):7,.0f}, median {statistics.median(values):7,.0f}")
    ceiling = statistics.median(r["ceiling_per_core"] for r in runs)
    verdict = "met" if ceiling >= TARGET else "NOT met"
    print(f"target {TARGET:,} streamed req/s on one core: {verdict} (median ceiling {ceiling:,.0f})")
    print("(a client share of its core well under 100% means neighbours on the shared machine took the rest)")
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": runs}, indent=2)
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()

"""What does modelyard add on top of an upstream, per core, with the ledger on?

One command measures, side by side and with the same load generator (wrk) and the same fake upstream
(nginx answering fixed bodies): direct-to-nginx, the issue's minimal aiohttp forwarder (the reference of
its targets), the same forwarder on modelyard's own transport ("lean": what modelyard's logic costs on top
of its stack), modelyard with its SQLite ledger, and the LiteLLM proxy. Each system runs as one worker
process pinned to CPU 0; nginx, wrk and the streaming client share CPU 1. See bench/README.md for the method.

    .venv/bin/python bench/gateway_overhead.py [--quick] [--soak-seconds N] [--skip-litellm]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import overhead_report as report
from overhead_harness import (
    BENCH,
    LITELLM_VENV,
    LOADGEN_CPU,
    MASTER_KEY,
    REPO,
    SYSTEM_CPU,
    Process,
    WrkRun,
    cpu_seconds,
    ensure_debian_tools,
    ensure_litellm,
    free_port,
    litellm_installed,
    loadavg,
    log,
    nginx_binary,
    peak_rss_mib,
    rss_mib,
    run_ttfb,
    run_wrk,
    wait_until_answering,
)

CHAT = BENCH / "requests" / "chat.json"
CHAT_STREAM = BENCH / "requests" / "chat-stream.json"
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Durations:
    warmup: float
    latency: float
    throughput: float
    ttfb_requests: int
    soak: float

    @classmethod
    def pick(cls, quick: bool, soak_seconds: float | None) -> Durations:
        if quick:
            return cls(1, 3, 3, 100, 10 if soak_seconds is None else soak_seconds)
        return cls(3, 15, 20, 500, 600 if soak_seconds is None else soak_seconds)


@dataclass(frozen=True)
class Upstream:
    port: int

    @property
    def json_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def sse_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/sse/v1"


@dataclass
class Running:
    """A system under test: its process (None for direct), base URL, and the paths of its two requests."""

    process: Process | None
    base_url: str
    json_path: str = CHAT_PATH
    stream_path: str = CHAT_PATH
    ledger_db: Path | None = None


# ------------------------------------------------------------------------------------ the fake upstream


def start_nginx(tmp: Path) -> tuple[Process, Upstream]:
    prefix = tmp / "nginx"
    prefix.mkdir()
    # The SSE body keeps its final blank line: without it the last event ([DONE]) is never complete.
    bodies = {name: (BENCH / "nginx" / name).read_text() for name in ("completion.json", "stream.sse")}
    for name, text in bodies.items():
        # Inlined into nginx's `return '...'`: these characters would be read as quotes, escapes or variables.
        if any(c in text for c in "'\\$"):
            raise ValueError(f"bench/nginx/{name} must not contain ' \\ or $")
    port = free_port()
    config = (BENCH / "nginx" / "nginx.conf.template").read_text()
    config = config.replace("@PREFIX@", str(prefix)).replace("@PORT@", str(port))
    config = config.replace("@COMPLETION@", bodies["completion.json"].strip()).replace(
        "@STREAM@", bodies["stream.sse"]
    )
    (prefix / "nginx.conf").write_text(config)
    binary = nginx_binary()
    assert binary is not None
    argv = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    process = Process.start("nginx", argv, LOADGEN_CPU, tmp / "nginx.log")
    upstream = Upstream(port)
    wait_until_answering(process, upstream.json_base + "/chat/completions", CHAT.read_bytes(), 10)
    return process, upstream


# ----------------------------------------------------------------------------------- systems under test


def start_direct(tmp: Path, upstream: Upstream) -> Running:
    return Running(None, f"http://127.0.0.1:{upstream.port}", CHAT_PATH, "/sse" + CHAT_PATH)


#: ``--before CHECKOUT``: another source tree of modelyard, measured in the same run as "modelyard-before"
#: (an A/B of a change under the same machine load). Set by main().
BEFORE_SRC: Path | None = None


def start_modelyard_before(tmp: Path, upstream: Upstream) -> Running:
    if BEFORE_SRC is None:
        raise SystemExit("modelyard-before needs --before CHECKOUT (a tree with src/modelyard)")
    return start_modelyard(tmp, upstream, "modelyard-before", {"PYTHONPATH": str(BEFORE_SRC / "src")})


def modelyard_config(upstream: Upstream, db: Path) -> str:
    """modelyard's config here (also bench/inprocess_counts.py's)."""
    return f"""
providers:
  upstream-json: {{kind: openai, base_url: "{upstream.json_base}", api_key_env: BENCH_UPSTREAM_KEY}}
  upstream-sse:  {{kind: openai, base_url: "{upstream.sse_base}", api_key_env: BENCH_UPSTREAM_KEY}}
  backup-json:   {{kind: openai, base_url: "{upstream.json_base}", api_key_env: BENCH_UPSTREAM_KEY}}
  backup-sse:    {{kind: openai, base_url: "{upstream.sse_base}", api_key_env: BENCH_UPSTREAM_KEY}}
models:
  primary-json:  {{provider: upstream-json, upstream_model: gpt-4o-mini}}
  primary-sse:   {{provider: upstream-sse, upstream_model: gpt-4o-mini}}
  fallback-json: {{provider: backup-json, upstream_model: gpt-4o-mini}}
  fallback-sse:  {{provider: backup-sse, upstream_model: gpt-4o-mini}}
routes:
  bench-json:   {{strategy: fallback, targets: [{{model: primary-json}}, {{model: fallback-json}}]}}
  bench-stream: {{strategy: fallback, targets: [{{model: primary-sse}}, {{model: fallback-sse}}]}}
workloads:
  bench: {{data_class: confidential, model: bench-json}}
policy:
  data_classes:
    confidential: {{allow: [upstream-json, upstream-sse, backup-json, backup-sse]}}
server: {{default_workload: bench}}
ledger: {{url: "sqlite:///{db}"}}
"""


def start_modelyard(
    tmp: Path, upstream: Upstream, name: str = "modelyard", extra_env: dict[str, str] | None = None
) -> Running:
    db = tmp / f"{name}-ledger.db"
    # Routing on, as a real deployment runs it: each model a fallback route over two providers (the backup
    # never needed here), under a data-class policy that names the approved providers, so every request
    # pays for workload resolution, the class decision, the plan and the breakers.
    config = modelyard_config(upstream, db)
    path = tmp / f"{name}.yaml"
    path.write_text(config)
    port = free_port()
    argv = [str(REPO / ".venv" / "bin" / "modelyard"), "serve", "--config", str(path)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    # Kind openai (not openai_compatible) so every call is priced from the catalog, as a real one would be.
    env = {"BENCH_UPSTREAM_KEY": "sk-upstream-dummy", **(extra_env or {})}
    process = Process.start(name, argv, SYSTEM_CPU, tmp / f"{name}.log", env)
    return Running(process, f"http://127.0.0.1:{port}", ledger_db=db)


def start_forwarder(
    tmp: Path, upstream: Upstream, script: str = "minimal_forwarder.py", name: str = "forwarder"
) -> Running:
    port = free_port()
    routes = [
        f"bench-json={upstream.json_base}/chat/completions",
        f"bench-stream={upstream.sse_base}/chat/completions",
    ]
    argv = [sys.executable, str(BENCH / script), str(port), *routes]
    process = Process.start(name, argv, SYSTEM_CPU, tmp / f"{name}.log")
    return Running(process, f"http://127.0.0.1:{port}")


def start_lean_forwarder(tmp: Path, upstream: Upstream) -> Running:
    return start_forwarder(tmp, upstream, "lean_forwarder.py", "lean")


def start_litellm(tmp: Path, upstream: Upstream) -> Running:
    entries = "".join(
        f"""
  - model_name: {name}
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}", api_key: sk-upstream-dummy}}"""
        for name, base in (("bench-json", upstream.json_base), ("bench-stream", upstream.sse_base))
    )
    path = tmp / "litellm.yaml"
    path.write_text(f"model_list:{entries}\ngeneral_settings: {{master_key: {MASTER_KEY}}}\n")
    port = free_port()
    argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(path), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1"]
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map at start-up
        "LITELLM_TELEMETRY": "False",
    }
    process = Process.start("litellm", argv, SYSTEM_CPU, tmp / "litellm.log", env)
    return Running(process, f"http://127.0.0.1:{port}")


SYSTEMS: dict[str, Callable[[Path, Upstream], Running]] = {
    "direct": start_direct,
    "forwarder": start_forwarder,
    "lean": start_lean_forwarder,
    "modelyard": start_modelyard,
    "modelyard-before": start_modelyard_before,
    "litellm": start_litellm,
}


# ----------------------------------------------------------------------------------------------- phases


@dataclass
class Subject:
    """One system under test and everything measured on it so far."""

    name: str
    running: Running
    ids_dir: Path
    runs: list[WrkRun] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=lambda: {"answered_probes": 0, "rounds": {}})

    def wrk(self, path: str, body: Path, connections: int, seconds: float, **extra: Any) -> dict[str, Any]:
        process = self.running.process
        cpu_before = cpu_seconds(process.pid) if process else 0.0
        run = run_wrk(self.running.base_url, path, body, connections=connections, seconds=seconds, **extra)
        # modelyard's ledger ingester runs at idle priority while it keeps up: count its CPU for these
        # requests too, by reading the counters only once every row of the run has left the spool.
        drained = self.wait_for_ledger()
        cpu = cpu_seconds(process.pid) - cpu_before if process else 0.0
        self.runs.append(run)
        return {
            "rps": run.rps,
            "requests": run.requests,
            "errors": run.errors,
            "latency_us": run.latency_us,
            "cpu_us_per_request": round(1e6 * cpu / run.requests, 1) if process and run.requests else None,
            "ledger_drained_s": drained,
        }

    def wait_for_ledger(self, timeout: float = 300.0) -> float | None:
        """Seconds until the spool is empty (every row stored); None for systems without a ledger."""
        db = self.running.ledger_db
        if db is None:
            return None
        spool_dir = db.with_name(db.name + ".spool")
        started = time.monotonic()
        while any(spool_dir.glob("*.jsonl")) and time.monotonic() - started < timeout:
            time.sleep(0.05)
        return round(time.monotonic() - started, 2)

    def phase(self, phase: str, d: Durations) -> dict[str, Any]:
        r = self.running
        if phase == "warmup":
            self.wrk(r.json_path, CHAT, 8, d.warmup)
            return self.wrk(r.stream_path, CHAT_STREAM, 8, d.warmup)
        if phase == "sequential":
            return self.wrk(r.json_path, CHAT, 1, d.latency)
        if phase == "throughput":
            return self.wrk(r.json_path, CHAT, 64, d.throughput)
        if phase == "stream_throughput":
            return self.wrk(r.stream_path, CHAT_STREAM, 64, d.throughput)
        ttfb = run_ttfb(
            r.base_url + r.stream_path, CHAT_STREAM, d.ttfb_requests, self.ids_dir / f"ttfb-{phase}.txt"
        )
        self.result["ttfb_answered"] = self.result.get("ttfb_answered", 0) + ttfb["answered"]
        return ttfb


PHASES = ("sequential", "throughput", "stream_throughput", "ttfb")


def best(phase: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The best round of a phase (the one least disturbed by the machine's other work); errors of every
    round are kept, so an error in any round still counts."""
    if phase in ("throughput", "stream_throughput"):
        chosen = dict(max(rounds, key=lambda x: x["rps"]))
        chosen["errors"] = {k: sum(x["errors"][k] for x in rounds) for k in chosen["errors"]}
        return chosen
    if phase == "ttfb":
        return min(rounds, key=lambda x: x["ttfb_us"]["p50"])
    return min(rounds, key=lambda x: x["latency_us"]["p50"])


def measure_all(subjects: list[Subject], d: Durations, rounds: int) -> None:
    """Every phase, interleaved across the systems (so background load on this shared machine falls on all
    of them alike), ``rounds`` times; then the soak on modelyard."""
    for s in subjects:
        if s.running.process is not None:
            startup = 180 if s.name == "litellm" else 30
            probe = s.running.base_url + s.running.json_path
            s.result["answered_probes"] = wait_until_answering(
                s.running.process, probe, CHAT.read_bytes(), startup
            )
            s.result["rss_idle_mib"] = rss_mib(s.running.process.pid)
        log(f"{s.name}: warm-up")
        s.phase("warmup", d)
    for n in range(1, rounds + 1):
        for phase in PHASES:
            for s in subjects:
                log(f"round {n}/{rounds}: {phase}: {s.name}")
                s.result["rounds"].setdefault(phase, []).append(s.phase(phase, d))
    for s in subjects:
        for phase in PHASES:
            s.result[phase] = best(phase, s.result["rounds"][phase])
        if s.running.process is not None:
            s.result["rss_peak_mib"] = peak_rss_mib(s.running.process.pid)
        if s.name == "modelyard" and d.soak > 0:
            s.result["soak"] = soak(s, d.soak)
            s.result["rss_peak_mib"] = peak_rss_mib(s.running.process.pid) if s.running.process else None


def soak(subject: Subject, seconds: float) -> dict[str, Any]:
    """Moderate mixed load (JSON and streaming alternate, 8 connections, 10 ms pause per request) while
    RSS is sampled; every answered request id is kept for the ledger check."""
    assert subject.running.process is not None
    pid, samples = subject.running.process.pid, []
    stop = threading.Event()
    interval = max(1.0, seconds / 60)

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append((round(time.monotonic() - started, 1), round(rss_mib(pid), 1)))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    log(f"{subject.name}: soak ({seconds:.0f}s, RSS every {interval:.0f}s)")
    sampler.start()
    r = subject.running
    load = subject.wrk(
        r.json_path, CHAT, 8, seconds, alt_body=CHAT_STREAM, delay_ms=10, ids_dir=subject.ids_dir
    )
    stop.set()
    sampler.join()
    samples.append((round(seconds, 1), round(rss_mib(pid), 1)))
    return {"load": load, "rss_samples_mib": samples, **report.flatness(samples)}


def ledger_check(subject: Subject) -> dict[str, Any]:
    """Rows in the ledger against what the clients received: every answered id must have its row, and
    the only extra rows are requests wrk cut off when a run ended (at most one per connection)."""
    assert subject.running.ledger_db is not None
    with sqlite3.connect(subject.running.ledger_db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        by_status = dict(conn.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
        ids = {r for (r,) in conn.execute("SELECT request_id FROM requests WHERE status = 200")}
    seen: set[str] = set()
    for path in subject.ids_dir.glob("*.txt"):
        seen.update(x for x in path.read_text().split() if x)
    answered = subject.result["answered_probes"] + subject.result.get("ttfb_answered", 0)
    answered += sum(r.requests for r in subject.runs)
    cut_max = sum(r.connections for r in subject.runs)
    return {
        "rows": rows,
        "rows_by_status": {str(k): v for k, v in by_status.items()},
        "client_answered": answered,
        "rows_minus_answered": rows - answered,
        "cut_at_end_max": cut_max,
        "ids_checked": len(seen),
        "ids_missing": len(seen - ids),
        "ok": len(seen - ids) == 0 and 0 <= rows - answered <= cut_max,
    }


def run(systems: list[str], d: Durations, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        nginx, upstream = start_nginx(tmp)
        subjects: list[Subject] = []
        try:
            for name in systems:
                (tmp / f"{name}-ids").mkdir()
                subjects.append(Subject(name, SYSTEMS[name](tmp, upstream), tmp / f"{name}-ids"))
            measure_all(subjects, d, rounds)
        finally:
            for s in subjects:
                if s.running.process is not None:
                    s.running.process.stop()  # modelyard flushes its ledger on SIGTERM
            nginx.stop()
        for s in subjects:
            if s.running.ledger_db is not None:
                s.result["ledger"] = ledger_check(s)
        return {s.name: s.result for s in subjects}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short phases (smoke test); skips LiteLLM if absent"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=None, help="soak length (default 600, quick 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds of every phase, best kept (default 2, quick 1)"
    )
    parser.add_argument("--skip-litellm", action="store_true", help="do not install or measure LiteLLM")
    parser.add_argument(
        "--systems",
        default=",".join(s for s in SYSTEMS if s != "modelyard-before"),
        help="comma-separated subset to measure (modelyard-before needs --before)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another checkout (a tree holding src/modelyard) measured as modelyard-before in the same run",
    )
    args = parser.parse_args()
    global BEFORE_SRC
    BEFORE_SRC = args.before
    durations = Durations.pick(args.quick, args.soak_seconds)
    rounds = args.rounds or (1 if args.quick else 2)
    systems = [s for s in args.systems.split(",") if s]
    ensure_debian_tools()
    if "litellm" in systems and (args.skip_litellm or (args.quick and not litellm_installed())):
        log(
            "LiteLLM skipped" + ("" if args.skip_litellm else " (not installed; --quick does not install it)")
        )
        systems.remove("litellm")
    elif "litellm" in systems:
        ensure_litellm()
    env = report.environment({**durations.__dict__, "rounds": rounds}, loadavg())
    results: dict[str, Any] = {"environment": env, "systems": run(systems, durations, rounds)}
    results["environment"]["loadavg_end"] = loadavg()
    results["summary"] = report.summarise(results["systems"])
    print(report.render(results))
    path = report.save(results, BENCH / "results")
    print(f"\nresults written to {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()

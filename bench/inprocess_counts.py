"""Instructions per request of modelyard's request handler and the lean forwarder's, in one process each.

``Api.handle`` (or the lean forwarder's handler) is called directly with a parsed request, against the same
nginx upstream the overhead benchmark uses; no inbound HTTP server and no ledger ingester, so the figure is
the handler's own work plus the upstream call. Each system runs under valgrind (``--tool=cachegrind
--cache-sim=no``) twice, with 100 and 600 measured requests (``--requests N``: N/6 and N); the difference
divided by 1,000 (two rounds each) is the cost of one request, without start-up. Deterministic to ±1 %
(±0.3 % with ``--requests 3000``, ~5 minutes), whatever else the machine runs:
the A/B of a change to the request path in ~2 minutes (``instruction_counts.py`` measures the whole server
under wrk, ~10 minutes).

    .venv/bin/python bench/inprocess_counts.py [--systems lean,modelyard] [--src CHECKOUT] [--stream]

``--src`` measures another checkout's ``src/`` (for a before/after); ``--tracing RATIO`` turns tracing on
at that sample ratio (spans go to the SDK's in-memory exporter: the SDK's work, not a collector's). ``--ablate STEP`` replaces one step
by a no-op (``check``: request validation, ``ledger``: the spool line, ``metrics``): what is left is that
step's cost. ``--bytecodes`` counts instead, without valgrind, the bytecodes and Python calls per request of
each function (bench/bytecode_profile.py): which Python code the instructions come from, in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bytecode_profile import BytecodeCounter  # noqa: E402  (sibling scripts' modules)
from valgrind_count import instructions  # noqa: E402

REPO = BENCH.parent


def _measure(
    system: str, n: int, stream: bool, ablate: str, tracing: float | None = None, bytecodes: bool = False
) -> None:
    """Run ``2 * n`` requests through ``system`` (after 300 of warm-up) and exit; with ``bytecodes``, ``n``
    requests under the bytecode counter, and print its report."""
    sys.path.insert(0, str(BENCH))
    import uvloop
    from multidict import CIMultiDict

    import gateway_overhead as bench
    from modelyard.transport.messages import Request, Streamed

    tmp = Path(tempfile.mkdtemp())
    nginx, upstream = bench.start_nginx(tmp)
    body = (BENCH / "requests" / ("chat-stream.json" if stream else "chat.json")).read_bytes()

    async def drain(answer: object) -> None:
        if isinstance(answer, Streamed):

            async def write(piece: bytes) -> None:
                return None

            await answer.body.pump(write)

    async def main() -> None:
        os.environ["BENCH_UPSTREAM_KEY"] = "sk-bench"
        if system == "lean":
            sys.argv = [
                "lean",
                "0",
                f"bench-json={upstream.json_base}/chat/completions",
                f"bench-stream={upstream.sse_base}/chat/completions",
            ]
            spec = importlib.util.spec_from_file_location("lean", BENCH / "lean_forwarder.py")
            assert spec is not None and spec.loader is not None
            lean = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(lean)
            handle = lean.chat
            ledger = None
        else:
            from modelyard.catalog.prices import load_catalog
            from modelyard.config.loader import load_config
            from modelyard.gateway.pipeline import Gateway
            from modelyard.http import app as http_app
            from modelyard.ledger.writer import Ledger
            from modelyard.providers.registry import build_adapter

            path = tmp / "modelyard.yaml"  # the overhead benchmark's: routing on, the SQLite ledger
            path.write_text(bench.modelyard_config(upstream, tmp / "ledger.db"))
            config = load_config(str(path))
            ledger = Ledger(config.ledger)
            await ledger.start()
            adapters = {name: build_adapter(name, p) for name, p in config.providers.items()}
            tracer = None
            if tracing is not None:  # spans kept in memory: the SDK's work, not a collector's network
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

                from modelyard.config.tracing import TracingConfig
                from modelyard.gateway.tracing import Tracing

                tracer = Tracing(
                    TracingConfig(enabled=True, sample_ratio=tracing), exporter=InMemorySpanExporter()
                )
            catalog = load_catalog(config.catalog.price_files)
            gateway = Gateway(config, adapters, catalog, ledger, tracing=tracer)
            if ablate == "check":
                http_app.check_chat_request = lambda body, raw=None: None  # type: ignore[assignment]
            elif ablate == "ledger":
                ledger.record = lambda request, attempts=(): None  # type: ignore[method-assign]
                ledger.record_values = lambda request, attempts=(): None  # type: ignore[method-assign]
            elif ablate == "metrics":
                gateway.metrics.observe = lambda row, attempts=(): None  # type: ignore[method-assign]
            handle = http_app.Api(gateway).handle

        def request() -> Request:
            headers = CIMultiDict({"Content-Type": "application/json", "Host": "bench"})
            return Request("POST", "/v1/chat/completions", "", headers, body, len(body))

        if bytecodes:
            for _ in range(300):
                await drain(await handle(request()))
            with BytecodeCounter() as counter:
                for _ in range(n):
                    await drain(await handle(request()))
            print(counter.report(n, top=1000), flush=True)
        else:
            for _ in range(300 + 2 * n):
                await drain(await handle(request()))
        if ledger is not None:
            await ledger.close()

    try:
        uvloop.run(main())
    finally:
        nginx.stop()
    sys.exit(0)


def _instructions(system: str, n: int, args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src) / "src")
    argv = [sys.executable, __file__, "--child", system, "--n", str(n), "--ablate", args.ablate]
    argv += ["--stream"] if args.stream else []
    argv += ["--tracing", str(args.tracing)] if args.tracing is not None else []
    return instructions(argv, env, system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="lean,modelyard")
    parser.add_argument("--src", default="", help="another checkout whose src/ is measured")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--ablate", default="", choices=["", "check", "ledger", "metrics"])
    parser.add_argument(
        "--tracing", type=float, default=None, metavar="RATIO", help="tracing on at this sample ratio"
    )
    parser.add_argument("--bytecodes", action="store_true", help="count bytecodes per function instead")
    parser.add_argument("--top", type=int, default=40, help="with --bytecodes: functions listed")
    parser.add_argument(
        "--requests", type=int, default=600, help="measured requests of the long run (the short one: a sixth)"
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measure(args.child, args.n, args.stream, args.ablate, args.tracing, args.bytecodes)
    started = time.monotonic()
    if args.bytecodes:
        for system in args.systems.split(","):
            print(f"== {system}" + (" (stream)" if args.stream else ""), flush=True)
            env = {**os.environ, "PYTHONPATH": str(Path(args.src) / "src")} if args.src else None
            argv = [sys.executable, __file__, "--child", system, "--n", "200", "--ablate", args.ablate]
            argv += ["--stream", "--bytecodes"] if args.stream else ["--bytecodes"]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            report = done.stdout.splitlines()
            print("\n".join(report[: args.top + 2]), flush=True)
        return
    for system in args.systems.split(","):
        short, long = (
            _instructions(system, args.requests // 6, args),
            _instructions(system, args.requests, args),
        )
        label = system + (" (stream)" if args.stream else "")
        label += f" without {args.ablate}" if args.ablate else ""
        label += f" tracing {args.tracing:g}" if args.tracing is not None else ""
        per_request = (long - short) // (2 * (args.requests - args.requests // 6))
        print(f"{label:40s} {per_request:>9,} instructions/request", flush=True)
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()

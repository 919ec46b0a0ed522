"""What does the HTTP server alone cost per request? aiohttp's against modelyard's own (transport/server.py).

Both serve one route whose handler does no work — parse the JSON body, answer the benchmark's 3 KB SSE
stream in two writes with the headers modelyard sends — each as one worker pinned to CPU 0, driven by
the gateway benchmark's wrk script (64 connections) from CPU 1, in alternating rounds. Prints req/s and
CPU µs per request of each, and their ratio.

    .venv/bin/python bench/server_overhead.py [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from overhead_harness import (
    BENCH,
    LOADGEN_CPU,
    SYSTEM_CPU,
    Process,
    cpu_seconds,
    ensure_debian_tools,
    free_port,
    log,
    run_wrk,
    wait_until_answering,
)

STREAM = BENCH / "nginx" / "stream.sse"
CHAT = BENCH / "requests" / "chat-stream.json"

AIOHTTP_SERVER = """
import sys, orjson, uvloop
from aiohttp import web
SSE = open(sys.argv[2], "rb").read()
HEAD, LAST = SSE[:-14], SSE[-14:]
async def chat(request):
    orjson.loads(await request.read())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Request-Id": "0123456789ab000000000001"})
    await response.prepare(request)
    await response.write(HEAD)
    await response.write_eof(LAST)
    return response
app = web.Application(client_max_size=1 << 22)
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            loop=uvloop.new_event_loop(), handler_cancellation=True)
"""

MODELYARD_SERVER = """
import asyncio, sys, orjson, uvloop
from modelyard.transport.server import Response, Server, Streamed
SSE = open(sys.argv[2], "rb").read()
HEAD, LAST = SSE[:-14], SSE[-14:]
class Body:
    async def pump(self, write):
        await write(HEAD)
        return LAST
    async def close(self):
        pass
async def chat(request):
    orjson.loads(request.body)
    return Streamed(Body(), headers={"Cache-Control": "no-cache", "X-Request-Id": "0123456789ab000000000001"})
async def main(port):
    refusal = lambda status, message: Response(b"{}", status=status)
    await Server(chat, refusal, 1 << 22).start("127.0.0.1", port)
    await asyncio.Event().wait()
uvloop.run(main(int(sys.argv[1])))
"""


def start(name: str, source: str, tmp: Path) -> tuple[Process, str]:
    script = tmp / f"serve_{name}.py"  # not aiohttp.py: it would shadow the package
    script.write_text(source)
    port = free_port()
    argv = [sys.executable, str(script), str(port), str(STREAM)]
    process = Process.start(name, argv, SYSTEM_CPU, tmp / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(process, url + "/v1/chat/completions", CHAT.read_bytes(), 30)
    run_wrk(url, "/v1/chat/completions", CHAT, connections=64, seconds=2)  # warm-up
    return process, url


def measure(name: str, process: Process, url: str, seconds: float) -> tuple[float, float]:
    """(req/s, CPU µs per request) of one round."""
    before = cpu_seconds(process.pid)
    run = run_wrk(url, "/v1/chat/completions", CHAT, connections=64, seconds=seconds)
    cpu_us = (cpu_seconds(process.pid) - before) / max(run.requests, 1) * 1e6
    log(f"{name}: {run.rps:,.0f} req/s, {cpu_us:.1f} µs CPU per request")
    return run.rps, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    ensure_debian_tools()
    log(f"servers on CPU {SYSTEM_CPU}, wrk on CPU {LOADGEN_CPU}")
    results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "modelyard": []}
    with tempfile.TemporaryDirectory(prefix="modelyard-server-") as name:
        tmp = Path(name)
        servers = {}
        try:
            for server, source in (("aiohttp", AIOHTTP_SERVER), ("modelyard", MODELYARD_SERVER)):
                servers[server] = start(server, source, tmp)
            for _ in range(args.rounds):  # alternating: background load falls on both
                for server, (process, url) in servers.items():
                    results[server].append(measure(server, process, url, args.seconds))
        finally:
            for process, _ in servers.values():
                process.stop()
    best = {server: max(figures) for server, figures in results.items()}
    print(f"\n{'server':<12}{'best req/s':>12}{'CPU µs/request':>16}")
    for server, (rps, cpu) in best.items():
        print(f"{server:<12}{rps:>12,.0f}{cpu:>16.1f}")
    print(f"\nmodelyard's server: {best['modelyard'][0] / best['aiohttp'][0]:.2f}x the requests per second")


if __name__ == "__main__":
    main()

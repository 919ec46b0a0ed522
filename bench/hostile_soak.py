"""Normal traffic beside hostile clients: does modelyard keep serving the normal ones?

The gateway (``modelyard serve``, SQLite ledger, routing on: the same config as ``gateway_overhead.py``)
runs pinned to CPU 0 in front of nginx's fixed answers. Normal clients are wrk's soak load (8 connections,
JSON and streamed requests alternating, 10 ms pause per request, every answered request id kept). It runs
once quiet, then again beside hostile clients that reconnect whenever the gateway drops them:

- 1,000 idle sockets, opened and held;
- never-ending heads: a URL, or one header value, sent 4 KiB every 10 ms (``--head-pause``) and never
  finished: refused at the limit, they reconnect at once;
- CRLF dribblers: ``\\r\\n`` every 500 ms, forever;
- stalled readers: a streamed request sent, its answer never read.

Prints the normal clients' p50/p99 in both runs, the gateway's RSS over time, what the hostile clients
got (how often they were dropped), and the ledger's rows against the requests answered.

    .venv/bin/python bench/hostile_soak.py [--seconds 120] [--quiet-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gateway_overhead import CHAT, CHAT_PATH, CHAT_STREAM, Subject, ledger_check, start_modelyard, start_nginx
from modelyard.transport.limits import raise_fd_limit
from overhead_harness import LOADGEN_CPU, ensure_debian_tools, log, rss_mib, wait_until_answering

STREAM_BODY = CHAT_STREAM.read_bytes()


class Hostile:
    """The hostile clients, on their own event loop in a child process (``nice 19``, on the load
    generator's CPU: they must not slow nginx and wrk, which share that core, more than the gateway);
    ``counts`` says what happened to them."""

    def __init__(self, port: int, idle: int, each: int, kinds: list[str], head_pause: float) -> None:
        self.port, self.idle, self.each, self.kinds = port, idle, each, kinds
        self.head_pause = head_pause
        self.counts: Counter[str] = Counter()
        self.stalled_requests = 0
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(target=self._child, args=(child,))

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._pipe.send("stop")
        self.counts, self.stalled_requests = self._pipe.recv()
        self._process.join(30)

    def _child(self, pipe: Connection) -> None:
        os.nice(19)
        self._stop = asyncio.Event()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            waiting = loop.run_in_executor(None, pipe.recv)
            waiting.add_done_callback(lambda _: self._stop.set())
            await self._main()

        asyncio.run(run())
        pipe.send((self.counts, self.stalled_requests))

    async def _main(self) -> None:
        counts = {kind: self.idle if kind == "idle" else self.each for kind in self.kinds}
        tasks = [asyncio.create_task(self._keep(kind)) for kind, n in counts.items() for _ in range(n)]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, kind: str) -> None:
        """One hostile client of ``kind``, reconnecting whenever the gateway drops it."""
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.counts[f"{kind}: connect failed"] += 1
                await asyncio.sleep(0.5)
                continue
            self.counts[f"{kind}: connections"] += 1
            try:
                await getattr(self, f"_{kind}")(reader, writer)
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()
            self.counts[f"{kind}: dropped by the gateway"] += 1

    @staticmethod
    async def _until_closed(reader: asyncio.StreamReader, read: bool = True) -> None:
        while await reader.read(65536 if read else 1):
            pass

    async def _idle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._until_closed(reader)

    async def _dribble(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first: bytes,
        piece: bytes,
        pause: float,
    ) -> None:
        writer.write(first)
        while not reader.at_eof():
            writer.write(piece)
            await writer.drain()
            try:
                async with asyncio.timeout(pause):
                    if await reader.read(65536) == b"":
                        return
            except TimeoutError:
                pass

    async def _url(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._dribble(reader, writer, b"GET /", b"a" * 4096, self.head_pause)

    async def _header(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._dribble(
            reader, writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ", b"v" * 4096, self.head_pause
        )

    async def _crlf(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._dribble(reader, writer, b"", b"\r\n", 0.5)

    async def _stalled(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % (CHAT_PATH.encode(), len(STREAM_BODY)) + STREAM_BODY)
        self.stalled_requests += 1
        await self._until_closed(reader, read=False)  # reads 1 byte only when the socket closes... or never


def normal_load(subject: Subject, seconds: float, rss: list[tuple[float, float]]) -> dict[str, Any]:
    assert subject.running.process is not None
    pid, stop = subject.running.process.pid, threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            rss.append((round(time.monotonic() - started, 1), round(rss_mib(pid), 1)))
            stop.wait(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    r = subject.running
    run = subject.wrk(
        r.json_path, CHAT, 8, seconds, alt_body=CHAT_STREAM, delay_ms=10, ids_dir=subject.ids_dir
    )
    stop.set()
    sampler.join()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="the hostile run")
    parser.add_argument("--quiet-seconds", type=float, default=60.0)
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets held")
    parser.add_argument("--each", type=int, default=20, help="clients of each other hostile kind")
    parser.add_argument(
        "--head-pause",
        type=float,
        default=0.01,
        help="seconds between 4 KiB pieces of a never-ending head (0.01: refused within 20-200 ms, then "
        "reconnecting, ~1,000 connections a second in all; 1.0: a slowloris)",
    )
    parser.add_argument("--kinds", default="idle,url,header,crlf,stalled", help="hostile kinds to run")
    args = parser.parse_args()
    ensure_debian_tools()
    raise_fd_limit()  # this process holds the hostile sockets
    os.sched_setaffinity(0, {int(LOADGEN_CPU)})
    with tempfile.TemporaryDirectory(prefix="modelyard-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        nginx, upstream = start_nginx(tmp)
        running = start_modelyard(tmp, upstream)
        assert running.process is not None
        try:
            ids = tmp / "ids"
            ids.mkdir()
            subject = Subject("modelyard", running, ids)
            probes = wait_until_answering(
                running.process, running.base_url + CHAT_PATH, CHAT.read_bytes(), 30
            )
            subject.result["answered_probes"] = probes
            subject.wrk(CHAT_PATH, CHAT, 8, 3)  # warm-up
            log(f"quiet run: {args.quiet_seconds:.0f}s")
            quiet_rss: list[tuple[float, float]] = []
            quiet = normal_load(subject, args.quiet_seconds, quiet_rss)
            hostile = Hostile(
                int(running.base_url.rsplit(":", 1)[1]),
                args.idle,
                args.each,
                args.kinds.split(","),
                args.head_pause,
            )
            log(
                f"hostile run: {args.seconds:.0f}s beside {args.idle} idle sockets and {args.each} of each other kind"
            )
            hostile.start()
            time.sleep(5)  # the idle sockets connect
            rss: list[tuple[float, float]] = []
            loud = normal_load(subject, args.seconds, rss)
            hostile.stop()
            time.sleep(2)
            subject.wait_for_ledger()
            ledger = ledger_check(subject)
        finally:
            running.process.stop()
            nginx.stop()
    # The stalled readers' requests were answered too (into buffers nobody read): each has its row.
    extra = ledger["rows_minus_answered"] - hostile.stalled_requests
    ledger["ok"] = ledger["ids_missing"] == 0 and 0 <= extra <= ledger["cut_at_end_max"]
    result = {
        "quiet": {k: quiet[k] for k in ("rps", "errors", "latency_us", "cpu_us_per_request")},
        # CPU per normal request, with the hostile clients' cost spread over them.
        "hostile": {k: loud[k] for k in ("rps", "errors", "latency_us", "cpu_us_per_request")},
        "p99_ratio": round(loud["latency_us"]["p99"] / max(quiet["latency_us"]["p99"], 1), 2),
        "rss_mib_quiet": quiet_rss,
        "rss_mib_hostile": rss,
        "hostile_clients": dict(sorted(hostile.counts.items())),
        "stalled_stream_requests": hostile.stalled_requests,
        "ledger": ledger,
    }
    print(json.dumps(result, indent=1))
    q, h = quiet["latency_us"], loud["latency_us"]
    print(
        f"\nnormal clients p50/p99 (ms): quiet {q['p50'] / 1e3:.2f}/{q['p99'] / 1e3:.2f}, "
        f"hostile {h['p50'] / 1e3:.2f}/{h['p99'] / 1e3:.2f} -> p99 ratio {result['p99_ratio']}x"
    )
    print(f"req/s quiet {quiet['rps']:,.0f}, hostile {loud['rps']:,.0f}; errors {loud['errors']}")
    print(f"gateway RSS (MiB) over the hostile run: {[m for _, m in rss]}")
    print(
        f"ledger: {ledger['rows']} rows for {ledger['client_answered']} answered + {hostile.stalled_requests} "
        f"stalled stream requests ({extra:+d}); answered ids missing a 200 row: {ledger['ids_missing']} "
        f"of {ledger['ids_checked']} (ok: {ledger['ok']})"
    )


if __name__ == "__main__":
    main()

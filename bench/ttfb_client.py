"""Sequential streaming client: time to the first SSE ``data:`` byte of each answer, over one connection.

Every system is measured with this same client (pinned to the load generator's core), so its own cost
cancels out in the difference to direct-to-upstream. Prints one JSON object on stdout.
Usage: ``ttfb_client.py URL BODY_FILE COUNT [IDS_FILE]``.
"""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from time import perf_counter
from urllib.parse import urlsplit

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-master-key"}
WARMUP = 20


def one_request(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[float, float, bytes, str]:
    """``(seconds to first data byte, seconds to the end, the answer or b"" if complete, request id)``."""
    started = perf_counter()
    conn.request("POST", path, body, HEADERS)
    response = conn.getresponse()
    seen = b""
    first = 0.0
    while b"data:" not in seen:
        piece = response.read1(65536)
        if not piece:
            break
        seen += piece
    first = perf_counter() - started
    seen += response.read()
    total = perf_counter() - started
    complete = response.status == 200 and seen.rstrip().endswith(b"data: [DONE]")
    return first, total, b"" if complete else seen, response.getheader("X-Request-Id") or ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    url, body_file, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids_file = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    body = Path(body_file).read_bytes()
    firsts: list[float] = []
    totals: list[float] = []
    ids: list[str] = []
    errors = 0
    for i in range(WARMUP + count):
        try:
            first, total, broken, request_id = one_request(conn, parts.path, body)
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            continue
        ids.append(request_id)
        if broken:
            errors += 1
            if errors == 1:
                print(f"incomplete answer: ...{broken[-300:]!r}", file=sys.stderr)
        elif i >= WARMUP:
            firsts.append(first)
            totals.append(total)
    if not firsts:
        sys.exit("no complete streamed answer")
    if ids_file is not None:
        ids_file.write_text("".join(f"{i}\n" for i in ids if i))
    us = 1e6
    print(
        json.dumps(
            {
                "requests": WARMUP + count,
                "answered": len(ids),
                "errors": errors,
                "ttfb_us": {"p50": percentile(firsts, 50) * us, "p99": percentile(firsts, 99) * us},
                "total_us": {"p50": percentile(totals, 50) * us, "p99": percentile(totals, 99) * us},
            }
        )
    )


if __name__ == "__main__":
    main()

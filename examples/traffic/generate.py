"""Generate the bundled SYNTHETIC traffic trace for `modelyard decide` (examples/traffic/synthetic.jsonl.gz).

Nothing here is real traffic. Four workloads of different shapes over 61 days (2026-09-01 .. 2026-10-31):

- extraction: a nightly high-volume batch job (≈9M calls/month, growing 8%/month), internal data;
- support-chat: latency-sensitive chat in business hours (≈600k calls/month), half the prompt cached;
- contracts: restricted legal documents, long prompts (≈60k calls/month), some sent to an external API;
- experiment: a small experiment that started on 2026-10-01.

The trace is sampled: each line carries ``weight`` = the number of identical calls it stands for, so the
file stays small while the volumes stay realistic. Deterministic (fixed seed). Run:
``python examples/traffic/generate.py`` (rewrites the .jsonl.gz next to this file).
"""

from __future__ import annotations

import gzip
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 61

# name: (calls/day at start, growth/month, lines/day, hour-of-day weights, model, provider, data class,
#        input mean, cached share, output mean, latency median ms, start day)
NIGHT = [6 if 1 <= h <= 5 else 1 for h in range(24)]
OFFICE = [0.3 if h < 7 or h > 19 else (3 if 9 <= h <= 16 else 1.5) for h in range(24)]
FLAT = [1.0] * 24
WORKLOADS = {
    "extraction": (300_000, 0.08, 100, NIGHT, "gpt-4.1-mini", "openai", "internal", 2500, 0.0, 400, 3500, 0),
    "support-chat": (
        20_000,
        0.03,
        100,
        OFFICE,
        "claude-haiku-4-5",
        "anthropic",
        "internal",
        1200,
        0.5,
        250,
        2200,
        0,
    ),
    "contracts": (2_000, 0.02, 50, OFFICE, "gpt-4.1", "openai", "restricted", 6000, 0.0, 800, 9000, 0),
    "experiment": (100, 0.0, 20, OFFICE, "gpt-5.4-mini", "openai", "public", 800, 0.0, 300, 2500, 30),
}


def lines(rng: random.Random) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name, (
        per_day,
        growth,
        per_line_day,
        hours,
        model,
        provider,
        dclass,
        inp,
        cached,
        outp,
        lat,
        first,
    ) in WORKLOADS.items():
        for day in range(first, DAYS):
            volume = per_day * (1 + growth) ** (day / 30.4375)
            weight = max(1, round(volume / per_line_day))
            for _ in range(per_line_day):
                hour = rng.choices(range(24), weights=hours)[0]
                ts = START + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3599))
                tokens_in = max(1, int(rng.lognormvariate(math.log(inp), 0.3)))
                tokens_out = max(1, int(rng.lognormvariate(math.log(outp), 0.4)))
                latency = rng.lognormvariate(math.log(lat), 0.35)
                failed = rng.random() < 0.004
                out.append({
                    "ts": round(ts.timestamp(), 3), "workload": name, "model": model, "provider": provider,
                    "input_tokens": tokens_in, "cached_input_tokens": int(tokens_in * cached),
                    "output_tokens": 0 if failed else tokens_out, "latency_ms": round(latency, 1),
                    "ttft_ms": round(latency * rng.uniform(0.15, 0.3), 1), "status": 500 if failed else 200,
                    "data_class": dclass, "weight": weight,
                })  # fmt: skip
    out.sort(key=lambda r: float(r["ts"]))  # type: ignore[arg-type]
    return out


def main() -> None:
    target = Path(__file__).with_name("synthetic.jsonl.gz")
    rows = lines(random.Random(20261101))
    # mtime=0 keeps the gzip bytes identical from run to run.
    with target.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for row in rows:
            gz.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
    print(f"wrote {len(rows)} lines to {target} (SYNTHETIC)")


if __name__ == "__main__":
    main()

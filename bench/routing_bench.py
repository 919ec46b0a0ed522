"""Routing + policy + redaction decision per request: how long the gateway takes to decide where a request
may go and what it may carry, before any upstream call (issue: < 100 µs for a typical request).

Measures, in one run, for a typical chat request (a system prompt and a user turn, ~1 KB) and a long
one (~2 KB of history): resolving workload, data class and route, planning the targets (policy filter,
circuit state), and PII redaction under the class's policy — without PII, and with an email, a phone
number and a card in it. Prints microseconds per request (median of 5 repeats of N requests).

    .venv/bin/python bench/routing_bench.py [--n 5000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from modelyard.catalog.prices import load_catalog
from modelyard.config import parse_config
from modelyard.gateway.admission import admit
from modelyard.gateway.pipeline import Gateway
from modelyard.gateway.targets import Target
from modelyard.http.meta import read_meta
from modelyard.providers.registry import build_adapter

CONFIG = {
    "providers": {
        "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
        "pool": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
    },
    "models": {
        "mini": {"provider": "openai", "upstream_model": "gpt-4o-mini"},
        "llama": {"provider": "pool"},
    },
    "routes": {"triage": {"strategy": "fallback", "targets": [{"model": "llama"}, {"model": "mini"}]}},
    "workloads": {"support": {"data_class": "confidential", "model": "triage"}},
    "policy": {"data_classes": {"confidential": {"allow": ["self_hosted", "openai"], "pii": "pseudonymise"}}},
}

WORDS = [
    "the",
    "customer",
    "asked",
    "about",
    "the",
    "delivery",
    "window",
    "for",
    "order",
    "and",
    "whether",
    "the",
    "invoice",
    "can",
    "be",
    "split",
]


def text(chars: int, rng: random.Random) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def body(chars: int, pii: bool, rng: random.Random) -> dict[str, object]:
    user = text(chars - 200, rng)
    if pii:
        user += " Reach me at ana.lima@example.org or +44 20 7946 0958; card 4111 1111 1111 1111."
    return {
        "model": "triage",
        "messages": [{"role": "system", "content": text(200, rng)}, {"role": "user", "content": user}],
    }


def everywhere(target: Target) -> bool:
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    config = parse_config(CONFIG)
    adapters = {name: build_adapter(name, p) for name, p in config.providers.items()}
    gateway = Gateway(config, adapters, load_catalog(), ledger=None)  # type: ignore[arg-type]
    headers = {"X-Modelyard-Workload": "support"}
    rng = random.Random(7)
    print(f"routing + policy + redaction decision, µs per request (median of 5 x {args.n})")
    for label, chars, pii in (
        ("typical ~1 KB", 1000, False),
        ("long ~2 KB", 2000, False),
        ("~1 KB with PII", 1000, True),
    ):
        runs = []
        for _ in range(5):
            # Fresh texts every run, so no memo inside the detector makes repeated requests free.
            bodies = [body(chars, pii, rng) for _ in range(args.n)]
            started = time.perf_counter()
            for b in bodies:
                plan = admit(gateway.tables, read_meta(headers, b, "chat"), b, None, everywhere, gateway.rng)
                assert plan.attempts.candidates
            runs.append((time.perf_counter() - started) / args.n * 1e6)
        print(f"  {label:16s} {statistics.median(runs):8.1f} µs   (target < 100 µs)")
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()

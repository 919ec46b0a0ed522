"""What ``/metrics`` counts for one label set: plain numbers the request path adds to, and the histogram
bounds. The families are built from these only when scraped (:mod:`modelyard.gateway.metric_families`).

Bucket bounds, seconds unless said otherwise. The OpenTelemetry GenAI conventions advise explicit bounds
for each histogram; modelyard uses them, extended where LLM traffic goes past their last bound:

- request duration: the convention's doubling ladder 0.01 s .. 81.92 s (a cache hit or an embedding in tens
  of milliseconds, a chat answer in seconds), plus 163.84 s and 327.68 s: a long reasoning answer takes
  minutes, and upstream time-outs sit at 2-5 minutes, so a p99 there must not land in ``+Inf``;
- time to first token: the convention's 1 ms .. 10 s, plus 20 s and 40 s for reasoning models that think
  before their first visible token;
- time per output token: the convention's 10 ms .. 2.5 s (a few ms per token is a fast GPU, 100 ms a busy one);
- tokens: the convention's powers of 4 from 1 to 67,108,864 (a one-word answer to a million-token prompt).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84, 327.68,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = tuple(4**i for i in range(14))
#: ``gen_ai.token.type`` values, in the order :meth:`Series.count_tokens` indexes them: the convention's
#: ``input`` and ``output``, then modelyard's (already part of ``input`` / ``output``, not added to them).
TOKEN_TYPES = ("input", "output", "cached_input", "cache_creation_input", "reasoning")


class SeriesKey(NamedTuple):
    """One exported label set."""

    operation: str
    provider_name: str
    provider: str
    request_model: str
    response_model: str
    error_type: str
    workload: str
    status: str


class Series:
    """Totals of one label set since start-up. Histogram counts are per bucket (not cumulative) with a last
    slot for ``+Inf``; money in pico-dollars, exact."""

    __slots__ = (
        "cache_hits",
        "cost_pico",
        "cost_saved_pico",
        "duration",
        "duration_sum",
        "fallbacks",
        "requests",
        "retries",
        "token_sums",
        "tokens",
        "tpot",
        "tpot_sum",
        "ttft",
        "ttft_sum",
        "unpriced",
    )

    def __init__(self) -> None:
        self.requests = self.unpriced = self.cache_hits = self.retries = self.fallbacks = 0
        self.cost_pico = self.cost_saved_pico = 0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)
        self.ttft = [0] * (len(TTFT_BUCKETS) + 1)
        self.tpot = [0] * (len(TPOT_BUCKETS) + 1)
        self.duration_sum = self.ttft_sum = self.tpot_sum = 0.0
        self.tokens = [[0] * (len(TOKEN_BUCKETS) + 1) for _ in TOKEN_TYPES]
        self.token_sums = [0] * len(TOKEN_TYPES)

    def copy(self) -> Series:
        """This series as it is now, for a reader on another thread while the request path keeps adding
        to the original (the OTLP push: ``gateway/otlp_metrics.py``)."""
        twin = object.__new__(Series)
        twin.requests, twin.unpriced, twin.cache_hits = self.requests, self.unpriced, self.cache_hits
        twin.retries, twin.fallbacks = self.retries, self.fallbacks
        twin.cost_pico, twin.cost_saved_pico = self.cost_pico, self.cost_saved_pico
        twin.duration, twin.ttft, twin.tpot = self.duration[:], self.ttft[:], self.tpot[:]
        twin.duration_sum, twin.ttft_sum, twin.tpot_sum = self.duration_sum, self.ttft_sum, self.tpot_sum
        twin.tokens = [counts[:] for counts in self.tokens]
        twin.token_sums = self.token_sums[:]
        return twin

    def count_tokens(self, kind: int, count: int) -> None:
        self.tokens[kind][bisect_left(TOKEN_BUCKETS, count)] += 1
        self.token_sums[kind] += count

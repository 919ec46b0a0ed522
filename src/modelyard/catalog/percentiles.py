"""From mean latencies to the percentiles our objectives are written in, conservatively.

Estimators (aiconfigurator-core, the roofline) give MEANS of time to first token (TTFT) and time per output
token (TPOT). Objectives are p95s. The rule, and why:

- **TTFT p95 = 3 × mean.** Under load, TTFT is mostly the wait for a slot in the next engine step plus the
  prompt's own prefill; such waits are at most about as variable as an exponential distribution, whose
  p95 is ln(20) ≈ 3.0 × its mean. Less variable waits (the usual case under continuous batching) have a
  smaller ratio, so 3× over-states the tail rather than hides it. (p99: ln(100) ≈ 4.6 × mean.)
- **Per-token p95 = 1.25 × mean** (p99 = 1.5 ×). A decode step's time moves with the batch's size and
  with the prefill chunk it shares the step with; those swing the step time by tens of percent, not by
  multiples, and a request's TPOT averages hundreds of steps.
- **End-to-end p95 = TTFT p95 + 1.25 × TPOT mean × (output tokens − 1)**: the two parts added as if their
  tails always coincided, never as if they cancelled.
- **p50s = means**: latency distributions skew right, so the median is at most the mean.

Measured profiles (``modelyard benchmark``) carry real percentiles and need none of this.
"""

from __future__ import annotations

from modelyard.catalog.serving import Level

TTFT_P95_PER_MEAN = 3.0
TTFT_P99_PER_MEAN = 4.6
TPOT_P95_PER_MEAN = 1.25
TPOT_P99_PER_MEAN = 1.5

RULE = (
    f"p95 from means: TTFT p95 = {TTFT_P95_PER_MEAN:g} x mean (an exponential tail's ratio, the worst "
    f"usual case), e2e p95 = TTFT p95 + {TPOT_P95_PER_MEAN:g} x mean TPOT x (output - 1)"
)


def level_from_means(
    concurrency: int, output_tokens_per_s: float, ttft_ms: float, tpot_ms: float, output_tokens: float
) -> Level:
    """One concurrency level whose percentiles follow the rule above; requests/s from tokens/s."""
    decode = tpot_ms * max(output_tokens - 1.0, 0.0)
    return Level(
        concurrency=concurrency,
        requests_per_s=output_tokens_per_s / max(output_tokens, 1.0),
        output_tokens_per_s=output_tokens_per_s,
        ttft_p50_ms=ttft_ms,
        ttft_p95_ms=TTFT_P95_PER_MEAN * ttft_ms,
        ttft_p99_ms=TTFT_P99_PER_MEAN * ttft_ms,
        itl_p50_ms=tpot_ms,
        itl_p99_ms=TPOT_P99_PER_MEAN * tpot_ms,
        e2e_p50_ms=ttft_ms + decode,
        e2e_p95_ms=TTFT_P95_PER_MEAN * ttft_ms + TPOT_P95_PER_MEAN * decode,
    )

"""The endpoint benchmark behind ``modelyard bench-endpoint``: what a model server really delivers.

Data flow, one module each::

    workload  token lengths (fixed, trace, ledger) and prompts synthesised to a token length
    probe     checks the endpoint (reachable, OpenAI-shaped, serves the model, reports usage); calibrates
    client    one streamed request, timed (TTFT, inter-token gaps, end) with the server's usage
    (transport/http1.py: the lean keep-alive HTTP/1.1 client under it, shared with the gateway)
    loadgen   one level: closed loop at a concurrency, or open loop at a Poisson request rate
    stats     per-level figures; knee: the most throughput that meets the objective
    sweep     probe + levels in turn, Ctrl-C safe
    profile   the measured serving profile the decision engine reads (catalog/serving.py)
    page, render   offline HTML page and the terminal table / progress bar
"""

from modelyard.benchmark.client import Endpoint
from modelyard.benchmark.errors import BenchmarkError
from modelyard.benchmark.knee import Knee, find_knee
from modelyard.benchmark.loadgen import LevelSpec
from modelyard.benchmark.stats import LevelStats, Slo
from modelyard.benchmark.sweep import SweepResult, concurrency_plan, rate_plan, run_sweep

__all__ = [
    "BenchmarkError",
    "Endpoint",
    "Knee",
    "LevelSpec",
    "LevelStats",
    "Slo",
    "SweepResult",
    "concurrency_plan",
    "find_knee",
    "rate_plan",
    "run_sweep",
]

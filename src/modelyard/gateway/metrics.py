"""Prometheus metrics of one gateway, exposed at ``/metrics``.

The request path only adds to plain integers in a dict (a few hundred nanoseconds, no lock: the event
loop is one thread); a prometheus_client collector turns them into metric families when scraped, and
the library does the exposition format. A registry per gateway, not the process-wide default, so two
gateways in one process (tests) never share counters.

Label values come only from the config (public model and route names, workloads, target names) and from
status codes, never from the request: a client naming a million unknown models must not grow ``/metrics``
by a series each. Anything else is counted under :data:`UNKNOWN`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelyard.ledger.schema import RequestRow
from modelyard.routing.breaker import Breakers

#: Latency histogram bounds, seconds.
BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
#: The label of a model or workload the config does not name. Config names start with a letter or digit,
#: so this one cannot collide with a real name.
UNKNOWN = "_unknown"


class _Totals:
    __slots__ = ("buckets", "cost_pico", "input_tokens", "latency_sum", "output_tokens", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_pico = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)


class GatewayMetrics(Collector):
    def __init__(self, breakers: Breakers, models: Iterable[str] = (), workloads: Iterable[str] = ()) -> None:
        self._breakers = breakers
        self._models = frozenset(models)
        self._workloads = frozenset(workloads)
        self._totals: dict[tuple[str, str, int], _Totals] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, row: RequestRow) -> None:
        workload = row.workload or ""
        if workload and workload not in self._workloads:
            workload = UNKNOWN
        model = row.model if row.model in self._models else UNKNOWN
        key = (workload, model, row.status)
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = _Totals()
        totals.requests += 1
        totals.input_tokens += row.input_tokens
        totals.output_tokens += row.output_tokens
        totals.cost_pico += row.cost_pico_usd or 0
        seconds = row.latency_ms / 1000.0
        totals.latency_sum += seconds
        totals.buckets[bisect_left(BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modelyard_requests",
            "Requests by workload, model and status",
            labels=["workload", "model", "status"],
        )
        tokens = CounterMetricFamily(
            "modelyard_tokens",
            "Tokens by workload, model and direction",
            labels=["workload", "model", "direction"],
        )
        cost = CounterMetricFamily(
            "modelyard_cost_usd",
            "Priced spend in USD (unpriced calls excluded)",
            labels=["workload", "model"],
        )
        latency = HistogramMetricFamily(
            "modelyard_request_seconds", "Request latency as the client saw it", labels=["workload"]
        )
        by_workload: dict[str, tuple[list[int], float]] = {}
        spend: dict[tuple[str, str], int] = {}
        volume: dict[tuple[str, str], tuple[int, int]] = {}
        for (workload, model, status), totals in self._totals.items():
            requests.add_metric([workload, model, str(status)], totals.requests)
            tin, tout = volume.get((workload, model), (0, 0))
            volume[(workload, model)] = (tin + totals.input_tokens, tout + totals.output_tokens)
            spend[(workload, model)] = spend.get((workload, model), 0) + totals.cost_pico
            counts, total = by_workload.get(workload, ([0] * (len(BUCKETS) + 1), 0.0))
            by_workload[workload] = (
                [a + b for a, b in zip(counts, totals.buckets, strict=True)],
                total + totals.latency_sum,
            )
        for (workload, model), (tin, tout) in volume.items():
            tokens.add_metric([workload, model, "input"], tin)
            tokens.add_metric([workload, model, "output"], tout)
            cost.add_metric([workload, model], spend[(workload, model)] / 1e12)
        for workload, (counts, total) in by_workload.items():
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([workload], buckets, total)
        breaker = GaugeMetricFamily(
            "modelyard_circuit_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
            labels=["target"],
        )
        for target, state in self._breakers.states().items():
            breaker.add_metric([target], _STATE_VALUE[state])
        yield from (requests, tokens, cost, latency, breaker)

    def render(self) -> bytes:
        return generate_latest(self.registry)

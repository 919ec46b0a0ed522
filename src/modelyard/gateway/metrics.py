"""Prometheus metrics of one gateway, exposed at ``/metrics`` (prometheus_client does the exposition).

A registry per gateway rather than the process-wide default, so several gateways (tests) never share
counters. Updating a labelled counter costs about a microsecond: cheap enough for the request path.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelyard.ledger.schema import RequestRow
from modelyard.routing.breaker import Breakers

_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    def __init__(self, breakers: Breakers) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._breakers = breakers
        self.requests = Counter(
            "modelyard_requests",
            "Requests by workload, model and status",
            ["workload", "model", "status"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "modelyard_tokens",
            "Tokens by workload, model and direction",
            ["workload", "model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "modelyard_cost_usd",
            "Priced spend in USD by workload and model (unpriced calls excluded)",
            ["workload", "model"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelyard_request_seconds",
            "Request latency as the client saw it",
            ["workload"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.breaker_state = Gauge(
            "modelyard_circuit_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
            ["target"],
            registry=self.registry,
        )

        # labels() resolves a child under a lock each call; the children are cached per label set instead.
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any, Any]] = {}

    def observe(self, row: RequestRow) -> None:
        key = (row.workload or "", row.model, row.status)
        children = self._children.get(key)
        if children is None:
            workload, model = key[0], key[1]
            children = self._children[key] = (
                self.requests.labels(workload, model, str(row.status)),
                self.tokens.labels(workload, model, "input"),
                self.tokens.labels(workload, model, "output"),
                self.cost.labels(workload, model),
                self.latency.labels(workload),
            )
        requests, tokens_in, tokens_out, cost, latency = children
        requests.inc()
        if row.input_tokens or row.output_tokens:
            tokens_in.inc(row.input_tokens)
            tokens_out.inc(row.output_tokens)
        if row.cost_pico_usd:
            cost.inc(row.cost_pico_usd / 1e12)
        latency.observe(row.latency_ms / 1000.0)

    def render(self) -> bytes:
        for target, state in self._breakers.states().items():
            self.breaker_state.labels(target).set(_STATE_VALUE[state])
        return generate_latest(self.registry)

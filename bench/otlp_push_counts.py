"""Instructions one OTLP metrics push costs, per label set: the part on the event loop (copying the
series) and the part on the push's thread (building the families from the copy, translating and encoding
the protobuf; the HTTP call itself is left out); ``scrape`` is collecting the live registry, what the push
would cost the loop without the copy. Run under valgrind so the figure does not depend on the neighbours:

    PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/tmp/c.%p \\
        .venv/bin/python bench/otlp_push_counts.py loop 1000 0
    ... loop 1000 10, thread 1000 0, thread 1000 10, scrape 1000 0, scrape 1000 10

and divide the difference of the totals by pushes x label sets. Python's start-up and the filling of the
series are in both runs of a pair and cancel out.
"""

from __future__ import annotations

import sys

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.resources import Resource

from modelyard.config.routing import BreakerConfig
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.otlp_translate import metrics_data, translate
from modelyard.gateway.series import Series, SeriesKey
from modelyard.routing.breaker import Breakers


def main(part: str, label_sets: int, pushes: int) -> None:
    metrics = GatewayMetrics(Breakers(BreakerConfig()))
    for i in range(label_sets):
        key = SeriesKey("chat", "openai", f"p{i % 7}", f"m{i}", f"m{i}", "", f"w{i % 5}", "200")
        metrics.series[key] = series = Series()
        series.requests, series.duration[3], series.ttft[2], series.tpot[4] = 3, 3, 1, 1
        series.tokens[0][5], series.tokens[1][4], series.token_sums[:2] = 3, 3, [900, 300]
        series.cost_pico = 1_000_000
    copied = metrics.copied()
    resource = Resource.create({"service.name": "bench"})
    for _ in range(pushes):
        if part == "loop":  # what the push does on the event loop
            copied = metrics.copied()
        elif part == "thread":  # what it does on its own thread, but the HTTP call
            families = list(copied.collect())
            encode_metrics(metrics_data(translate(families, 0, 1), resource)).SerializeToString()
        else:  # "scrape": what collecting the registry on the loop would cost, as /metrics does
            list(metrics.registry.collect())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

"""The Prometheus families as OpenTelemetry metrics, from tables of cases (pure functions), and the
``metrics.otlp`` config's errors, which name the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import AggregationTemporality, Gauge, Histogram, Sum
from opentelemetry.sdk.resources import Resource
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from modelyard.config import parse_config
from modelyard.config.routing import BreakerConfig
from modelyard.errors import ConfigError
from modelyard.gateway.metric_families import GenAiCollector
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.otlp_translate import NAMES, PROMETHEUS_ONLY, metrics_data, translate
from modelyard.gateway.series import Series, SeriesKey
from modelyard.routing.breaker import Breakers

START, NOW = 1_000, 2_000


def test_a_histogram_gets_its_dotted_name_per_bucket_counts_and_no_empty_attribute() -> None:
    family = HistogramMetricFamily(
        "gen_ai_server_request_duration",
        "Request duration",
        labels=["gen_ai_request_model", "error_type"],
        unit="seconds",
    )
    family.add_metric(["m", ""], [("0.1", 1), ("1.0", 3), ("+Inf", 4)], 2.5)
    family.add_metric(["m", "upstream_timeout"], [("0.1", 0), ("1.0", 0), ("+Inf", 2)], 240.0)
    (metric,) = translate([family], START, NOW)
    assert (metric.name, metric.unit, metric.description) == (
        "gen_ai.server.request.duration",
        "s",
        "Request duration",
    )
    assert isinstance(metric.data, Histogram)
    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    ok, failed = metric.data.data_points
    assert dict(ok.attributes or {}) == {"gen_ai.request.model": "m"}, "an empty label is no attribute"
    assert (list(ok.bucket_counts), list(ok.explicit_bounds), ok.count, ok.sum) == (
        [1, 2, 1],
        [0.1, 1.0],
        4,
        2.5,
    )
    assert dict(failed.attributes or {}) == {"gen_ai.request.model": "m", "error.type": "upstream_timeout"}
    assert (list(failed.bucket_counts), failed.count) == ([0, 0, 2], 2)
    assert (ok.start_time_unix_nano, ok.time_unix_nano) == (START, NOW)


def test_counters_become_cumulative_monotonic_sums_counts_as_integers_money_as_doubles() -> None:
    unpriced = CounterMetricFamily("modelyard_unpriced_requests", "u", labels=["gen_ai_request_model"])
    unpriced.add_metric(["llama"], 3.0)
    spend = CounterMetricFamily("modelyard_spend_usd", "s", labels=["gen_ai_request_model"])
    spend.add_metric(["gpt"], 0.25)
    spend.add_metric(["free"], 0.0)
    counts, money = translate([unpriced, spend], START, NOW)
    for metric in (counts, money):
        assert isinstance(metric.data, Sum)
        assert metric.data.is_monotonic
        assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert (counts.name, counts.unit) == ("modelyard.requests.unpriced", "{request}")
    (point,) = counts.data.data_points
    assert point.value == 3 and isinstance(point.value, int)
    assert (money.name, money.unit) == ("modelyard.spend", "USD")
    assert [p.value for p in money.data.data_points] == [0.25, 0.0]
    assert all(isinstance(p.value, float) for p in money.data.data_points)


def test_budget_gauges_stay_gauges_with_their_labels_as_modelyard_attributes() -> None:
    family = GaugeMetricFamily(
        "modelyard_budget_remaining", "r", labels=["budget", "scope", "subject", "unit"]
    )
    family.add_metric(["monthly", "tenant", "acme", "usd"], 12.5)
    (metric,) = translate([family], START, NOW)
    assert metric.name == "modelyard.budget.remaining" and isinstance(metric.data, Gauge)
    (point,) = metric.data.data_points
    assert dict(point.attributes or {}) == {
        "modelyard.budget.name": "monthly",
        "modelyard.budget.scope": "tenant",
        "modelyard.budget.subject": "acme",
        "modelyard.budget.unit": "usd",
    }
    assert point.value == 12.5


def test_legacy_and_empty_families_are_left_out_and_an_unnamed_one_keeps_its_name() -> None:
    legacy = CounterMetricFamily("modelyard_requests", "r", labels=["status"])
    legacy.add_metric(["200"], 5)
    empty = CounterMetricFamily("modelyard_retries", "r", labels=["gen_ai_request_model"])
    new = GaugeMetricFamily("modelyard_something_new_seconds", "n", unit="seconds")
    new.add_metric([], 1.5)
    (metric,) = translate([legacy, empty, new], START, NOW)
    assert (metric.name, metric.unit) == ("modelyard_something_new_seconds", "seconds"), "never dropped"


def test_every_family_the_gateway_collects_has_an_opentelemetry_name() -> None:
    """A series added to /metrics without a line in NAMES (or PROMETHEUS_ONLY) fails here."""
    series = Series()
    series.requests, series.duration[0], series.ttft[0], series.tpot[0] = 1, 1, 1, 1
    series.tokens[0][0] = 1
    key = SeriesKey("chat", "openai", "p", "m", "m", "", "w", "200")
    collected = {f.name for f in GenAiCollector({key: series}, Breakers(BreakerConfig()).states).collect()}
    budgets = {f"modelyard_budget_{n}" for n in ("limit", "spent", "reserved", "remaining")}
    ledger = {
        "modelyard_ledger_spool_lag_seconds",
        "modelyard_ledger_spool_segments",
        "modelyard_ledger_queued_rows",
    }
    assert collected | budgets | ledger <= set(NAMES) | PROMETHEUS_ONLY, (collected | budgets | ledger) - set(
        NAMES
    )
    assert len({n.name for n in NAMES.values()}) == len(NAMES), "two series under one OTLP name"


def test_a_series_copy_has_every_number_and_shares_no_list_with_the_original() -> None:
    series = Series()
    for number, name in enumerate(Series.__slots__, start=1):
        value = getattr(series, name)
        if name == "tokens":
            series.tokens = [[number * 100 + i + j for j in range(len(row))] for i, row in enumerate(value)]
        elif isinstance(value, list):
            setattr(series, name, [number * 100 + i for i in range(len(value))])
        else:
            setattr(series, name, number)
    twin = series.copy()
    for name in Series.__slots__:
        assert getattr(twin, name) == getattr(series, name), f"{name} not copied"
    for name in ("duration", "ttft", "tpot", "token_sums"):
        getattr(series, name)[0] += 1
    series.tokens[4][0] += 1
    for name in ("duration", "ttft", "tpot", "token_sums", "tokens"):
        assert getattr(twin, name) != getattr(series, name), f"{name} shared with the original"


def test_the_copied_series_stay_as_they_were_while_requests_keep_counting() -> None:
    metrics = GatewayMetrics(Breakers(BreakerConfig()))
    key = SeriesKey("chat", "openai", "p", "m", "m", "", "w", "200")
    metrics.series[key] = live = Series()
    live.requests, live.duration[2], live.duration_sum = 1, 1, 0.05
    copied = metrics.copied()
    before = [(s.name, s.labels, s.value) for f in copied.collect() for s in f.samples]
    live.requests, live.duration[2], live.duration_sum = 2, 2, 0.1
    assert [(s.name, s.labels, s.value) for f in copied.collect() for s in f.samples] == before
    assert before != [(s.name, s.labels, s.value) for f in metrics.registry.collect() for s in f.samples]


def test_the_payload_encodes_with_the_sdks_encoder() -> None:
    family = HistogramMetricFamily("gen_ai_client_token_usage", "t", labels=["gen_ai_token_type"])
    family.add_metric(["input"], [("1", 0), ("4", 1), ("+Inf", 1)], 3)
    resource = Resource.create({"service.name": "s", "service.instance.id": "i"})
    request = encode_metrics(metrics_data(translate([family], START, NOW), resource))
    (resource_metrics,) = request.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "modelyard"
    (metric,) = scope_metrics.metrics
    (point,) = metric.histogram.data_points
    assert (metric.name, metric.unit, list(point.bucket_counts)) == (
        "gen_ai.client.token.usage",
        "{token}",
        [0, 1, 0],
    )
    assert not point.HasField("min"), "a Prometheus histogram keeps no minimum: none is sent"


BASE = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
    "models": {"m": {"provider": "p"}},
}


@pytest.mark.parametrize(
    ("otlp", "expected"),
    [
        ({"endpoint": "http://collector:4318"}, "metrics.otlp.endpoint: 'http://collector:4318' has no path"),
        ({"endpoint": "http://collector:4318/"}, "write http://collector:4318/v1/metrics"),
        (
            {"endpoint": "http://collector:4318/v1/traces"},
            "the collector's traces path; metrics go to http://collector:4318/v1/metrics",
        ),
        ({"endpoint": "collector:4318/v1/metrics"}, "is not an http(s) URL; write it in full"),
        ({"interval_s": 0.1}, "metrics.otlp.interval_s: Input should be greater than or equal to 1"),
        ({"headers": {"api-key": "x"}}, "metrics.otlp.headers: unknown key"),
        ({"service_name": ""}, "metrics.otlp.service_name"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(otlp: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**BASE, "metrics": {"otlp": {"enabled": True, **otlp}}})
    assert expected in str(raised.value)


def test_the_push_is_off_by_default_and_a_collector_path_of_its_own_is_kept() -> None:
    assert parse_config(BASE).metrics.otlp.enabled is False
    endpoint = "https://otlp.example.com/otlp/v1/metrics"
    config = parse_config({**BASE, "metrics": {"otlp": {"enabled": True, "endpoint": endpoint}}})
    assert config.metrics.otlp.endpoint == endpoint

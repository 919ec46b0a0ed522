"""The series of ``/metrics`` pushed by OTLP/HTTP (issue 18): real requests through the gateway against the
provider fakes, pushed to an OTLP receiver on loopback that decodes the protobuf with opentelemetry-proto's
classes; names, units, attributes and values held against the ledger rows of the same requests. Nothing is
pushed when the push is off, a collector that is down costs one warning and no request, and each process
of ``serve --workers`` pushes under its own ``service.instance.id``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from prometheus_client.parser import text_string_to_metric_families

from modelyard.app import running_gateway
from modelyard.gateway.otlp_metrics import SDK_LOGGER
from modelyard.gateway.otlp_translate import NAMES, PROMETHEUS_ONLY
from modelyard.gateway.series import DURATION_BUCKETS
from tests.conftest import GatewayUnderTest, gateway_config
from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState, free_port, serve_app
from tests.fakes.otlp_receiver import Export, Receiver, attributes, receiving
from tests.test_gateway_process import write_config
from tests.test_metrics_genai import chat
from tests.test_serve_workers import serving, supervisor, wait_for

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def otlp(endpoint: str, **overrides: Any) -> dict[str, Any]:
    return {
        "otlp": {
            "enabled": True,
            "endpoint": endpoint,
            "interval_s": 1,
            "timeout_s": 2,
            "service_name": "gw-otlp-test",
            **overrides,
        }
    }


def points(metric: Metric) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) of a metric of any kind."""
    data = getattr(metric, metric.WhichOneof("data"))
    return [(attributes(p.attributes), p) for p in data.data_points]


def number(point: Any) -> float:
    return float(getattr(point, point.WhichOneof("value")))


def total(metric: Metric, field: str = "", **where: str) -> float:
    """The sum over the points whose attributes include ``where``: a histogram's ``field`` (count, sum),
    else the number."""
    return sum(
        getattr(p, field) if field else number(p)
        for got, p in points(metric)
        if all(got.get(k) == v for k, v in where.items())
    )


@dataclass
class Pushed:
    while_serving: list[Export]
    last: Export
    rows: list[dict[str, Any]]
    receiver: Receiver
    #: The families /metrics served with samples, by prometheus_client's parser.
    scraped: set[str]


async def until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pushed(tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]) -> AsyncIterator[Pushed]:
    """One answer, one streamed answer, one unpriced answer, one upstream failure and one answer that fell
    back (the requests of test_metrics_genai.py), pushed every second and once more at shutdown."""
    bases, states = fakes
    async with receiving(free_port()) as receiver:
        config = gateway_config(
            tmp_path,
            bases,
            routes={
                "fb": {
                    "strategy": "fallback",
                    "targets": [{"model": "anthropic-chat"}, {"model": "openai-chat"}],
                }
            },
            resilience={
                "retries": {"max_retries": 1, "backoff_base_ms": 1, "backoff_max_ms": 1},
                "breaker": {"failures": 100, "window_s": 30, "cooldown_s": 60},
            },
            metrics=otlp(receiver.endpoint),
        )
        async with running_gateway(config, "127.0.0.1", 0) as url:
            gateway = GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)
            async with aiohttp.ClientSession() as session:
                assert (await chat(session, url, "openai-chat"))[0] == 200
                assert (await chat(session, url, "openai-chat", stream=True))[0] == 200
                assert (await chat(session, url, "llama"))[0] == 200
                states["anthropic"].scenario = "server_error"
                assert (await chat(session, url, "anthropic-chat"))[0] >= 500
                assert (await chat(session, url, "fb"))[0] == 200
                async with session.get(f"{url}/metrics") as r:
                    families = text_string_to_metric_families(await r.text())
                    scraped = {f.name for f in families if f.samples}
            rows = await gateway.wait_rows(5)
            count = len(receiver.exports)
            await until(lambda: len(receiver.exports) > count, 5, "a push while serving")
            while_serving = list(receiver.exports)
        yield Pushed(while_serving, receiver.exports[-1], rows, receiver, scraped)


async def test_a_push_arrives_every_interval_and_a_last_one_at_shutdown(pushed: Pushed) -> None:
    assert pushed.while_serving, "pushed on the timer, not only at shutdown"
    assert len(pushed.receiver.exports) > len(pushed.while_serving), "one last push at shutdown"
    assert set(pushed.receiver.content_types) == {"application/x-protobuf"}
    resource = pushed.last.resource
    assert resource["service.name"] == "gw-otlp-test"
    assert resource["process.pid"] == os.getpid()
    assert uuid.UUID(resource["service.instance.id"]).version == 4
    assert {e.resource["service.instance.id"] for e in pushed.receiver.exports} == {
        resource["service.instance.id"]
    }, "one instance for the process's life"
    assert pushed.last.scope == "modelyard"


async def test_genai_metrics_keep_their_dotted_names_units_and_attributes(pushed: Pushed) -> None:
    metrics, rows = pushed.last.metrics, pushed.rows
    units = {name: m.unit for name, m in metrics.items()}
    assert {
        "gen_ai.client.token.usage": "{token}",
        "gen_ai.server.request.duration": "s",
        "gen_ai.server.time_to_first_token": "s",
        "gen_ai.server.time_per_output_token": "s",
    }.items() <= units.items()
    # Every name is the OpenTelemetry one: none of Prometheus' spelling, none of the legacy series; and
    # every series /metrics serves is pushed (a collector registered past GatewayMetrics.add would not be).
    assert set(metrics) <= {n.name for n in NAMES.values()}, set(metrics)
    assert {NAMES[name].name for name in pushed.scraped - PROMETHEUS_ONLY} <= set(metrics)

    duration = metrics["gen_ai.server.request.duration"]
    assert duration.WhichOneof("data") == "histogram"
    assert duration.histogram.aggregation_temporality == CUMULATIVE
    assert total(duration, "count") == len(rows) == 5
    for _, point in points(duration):
        assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
        assert len(point.bucket_counts) == len(DURATION_BUCKETS) + 1
        assert sum(point.bucket_counts) == point.count
        assert not point.HasField("min") and not point.HasField("max"), "not kept, so not invented"
        assert point.start_time_unix_nano <= min(r["ts"] for r in rows) * 1e9 < point.time_unix_nano
    answered = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "openai-chat",
        "gen_ai.response.model": "gpt-4o-mini",
        "modelyard.provider": "openai-fake",
        "modelyard.workload": "chat",
    }
    assert [p.count for got, p in points(duration) if got == answered] == [2], "no error.type on a success"
    (failed,) = [got for got, _ in points(duration) if got["gen_ai.request.model"] == "anthropic-chat"]
    assert failed["error.type"] == rows[3]["error_kind"] != ""
    assert failed["gen_ai.provider.name"] == "anthropic"


async def test_token_sums_spend_and_counts_equal_the_ledger_rows(pushed: Pushed) -> None:
    metrics, rows = pushed.last.metrics, pushed.rows
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.histogram.aggregation_temporality == CUMULATIVE
    for token_type, column in (("input", "input_tokens"), ("output", "output_tokens")):
        in_ledger = sum(r[column] for r in rows)
        assert in_ledger > 0
        assert total(tokens, "sum", **{"gen_ai.token.type": token_type}) == in_ledger
    answered = [r for r in rows if r["input_tokens"] or r["output_tokens"]]
    assert total(tokens, "count", **{"gen_ai.token.type": "input"}) == len(answered)

    spend = metrics["modelyard.spend"]
    assert (spend.unit, spend.sum.is_monotonic, spend.sum.aggregation_temporality) == (
        "USD",
        True,
        CUMULATIVE,
    )
    priced = sum(r["cost_pico_usd"] or 0 for r in rows)
    assert priced > 0 and total(spend) == pytest.approx(priced / 1e12)
    unpriced = metrics["modelyard.requests.unpriced"]
    assert [(got["gen_ai.request.model"], p.as_int) for got, p in points(unpriced) if p.as_int] == [
        ("llama", 1)
    ], "a count goes as an integer, and the unpriced request is not $0"
    assert total(metrics["modelyard.retries"], **{"gen_ai.request.model": "fb"}) == 1
    assert total(metrics["modelyard.fallbacks"], **{"gen_ai.request.model": "fb"}) == 1

    (streamed,) = [r for r in rows if r["streamed"]]
    ttft = metrics["gen_ai.server.time_to_first_token"]
    assert total(ttft, "count") == 1
    assert total(ttft, "sum") == pytest.approx(streamed["ttft_ms"] / 1000)
    assert metrics["modelyard.ledger.spool.lag"].WhichOneof("data") == "gauge"
    circuits = {got["modelyard.target"] for got, _ in points(metrics["modelyard.circuit.state"])}
    assert {"openai-chat", "llama"} <= circuits


async def test_nothing_is_pushed_when_the_push_is_off(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> None:
    bases, _ = fakes
    async with receiving(free_port()) as receiver:
        off = gateway_config(tmp_path, bases, metrics=otlp(receiver.endpoint, enabled=False))
        default = gateway_config(tmp_path, bases)
        assert default.metrics.otlp.enabled is False, "off unless asked for"
        for config in (off, default):
            async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
                assert (await chat(session, url, "openai-chat"))[0] == 200
                await asyncio.sleep(1.5)  # longer than the interval the push would have had
                async with session.get(f"{url}/metrics") as r:
                    assert "gen_ai_server_request_duration_seconds_count" in await r.text()
        assert receiver.exports == []


async def test_a_collector_that_is_down_costs_one_warning_and_no_request(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bases, _ = fakes
    port = free_port()  # nothing listens there yet
    config = gateway_config(
        tmp_path, bases, metrics=otlp(f"http://127.0.0.1:{port}/v1/metrics", timeout_s=0.5)
    )

    def said(text: str) -> list[str]:
        return [
            r.getMessage() for r in caplog.records if r.name == "modelyard.metrics" and text in r.getMessage()
        ]

    async with running_gateway(config, "127.0.0.1", 0) as url, aiohttp.ClientSession() as session:
        statuses = []
        deadline = time.monotonic() + 3.5  # three pushes or more fail meanwhile
        while time.monotonic() < deadline:
            statuses.append((await chat(session, url, "openai-chat"))[0])
            await asyncio.sleep(0.1)
        assert set(statuses) == {200} and len(statuses) > 10
        (warning,) = said("failed")
        assert f"127.0.0.1:{port}/v1/metrics" in warning and "Failed to export" in warning, warning
        assert not [r for r in caplog.records if r.name.startswith(SDK_LOGGER)], "the SDK's lines held back"
        async with receiving(port) as receiver:  # the collector comes back
            await until(lambda: receiver.exports, 5, "a push to the collector once it is back")
            await until(lambda: said("works again"), 2, "the recovery noted")
        assert (await chat(session, url, "openai-chat"))[0] == 200
    assert len(said("failed")) == 2, "the final push at shutdown found it gone again: one more warning"


@pytest.mark.slow
async def test_each_worker_pushes_its_own_series_under_its_own_instance_id(tmp_path: Path) -> None:
    state = FakeState()
    async with serve_app(fake_openai.create_app(state)) as upstream, receiving(free_port()) as receiver:
        path = write_config(tmp_path, upstream, flush_ms=50)
        config = yaml.safe_load(path.read_text())
        config["metrics"] = otlp(receiver.endpoint)
        path.write_text(yaml.safe_dump(config))
        port, log = free_port(), tmp_path / "serve.log"
        process = supervisor(path, port, log, workers=2)
        try:
            await wait_for(lambda: len(serving(log)) == 2, 30, "two workers serving")
            workers = serving(log)

            def instances() -> dict[str, int]:
                return {
                    e.resource["service.instance.id"]: e.resource["process.pid"] for e in receiver.exports
                }

            await wait_for(lambda: set(instances().values()) == workers, 10, "a push from each worker")
            assert len(instances()) == 2, "one instance id per process"
            assert {e.resource["service.name"] for e in receiver.exports} == {"gw-otlp-test"}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

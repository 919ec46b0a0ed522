"""An OTLP/HTTP metrics receiver on loopback, as a collector's ``otlphttp`` receiver answers: ``POST
/v1/metrics`` with a protobuf ``ExportMetricsServiceRequest`` (gzip-encoded if the exporter says so),
decoded with the opentelemetry-proto package's classes, answered with an ``ExportMetricsServiceResponse``.
What a test reads back is a plain view of each request (:class:`Export`)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

PROTOBUF = "application/x-protobuf"


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass
class Export:
    """One resource's metrics of one request."""

    resource: dict[str, Any]
    scope: str
    metrics: dict[str, Metric]


@dataclass
class Receiver:
    url: str = ""
    exports: list[Export] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/metrics"


def create_app(receiver: Receiver) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportMetricsServiceRequest()
        message.ParseFromString(body)
        receiver.content_types.append(request.content_type)
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                receiver.exports.append(
                    Export(
                        attributes(resource_metrics.resource.attributes),
                        scope_metrics.scope.name,
                        {m.name: m for m in scope_metrics.metrics},
                    )
                )
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(), content_type=PROTOBUF)

    app = web.Application()
    app.router.add_post("/v1/metrics", metrics)
    return app


@asynccontextmanager
async def receiving(port: int, receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    """A receiver listening on ``127.0.0.1:port`` until the block ends."""
    receiver = receiver or Receiver()
    runner = web.AppRunner(create_app(receiver), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()

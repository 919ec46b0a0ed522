"""``tracing:``: OpenTelemetry traces of the gateway's requests, exported by OTLP over HTTP. Off by default:
with ``enabled: false`` no tracer is built and the request path pays nothing (``gateway/tracing.py``)."""

from __future__ import annotations

from pydantic import Field

from modelyard.config.strict import Strict


class TracingConfig(Strict):
    enabled: bool = False
    #: The OTLP/HTTP traces endpoint of a collector (Jaeger, Tempo, the OpenTelemetry Collector...).
    endpoint: str = Field("http://127.0.0.1:4318/v1/traces", pattern=r"^https?://\S+$")
    #: Share of new traces kept (a client's sampled ``traceparent`` is always followed: parent-based).
    sample_ratio: float = Field(0.01, ge=0.0, le=1.0)
    #: ``service.name`` of the spans' resource.
    service_name: str = Field("modelyard", min_length=1, max_length=200)

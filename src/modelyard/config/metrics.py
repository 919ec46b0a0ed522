"""``metrics:``: the optional OTLP push of the series ``/metrics`` serves. Off by default: with
``otlp.enabled: false`` nothing is built and the OpenTelemetry SDK is not even imported
(``gateway/otlp_metrics.py``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from modelyard.config.strict import Strict

_EXAMPLE = "http://otel-collector:4318/v1/metrics"


class OtlpMetricsConfig(Strict):
    enabled: bool = False
    #: The OTLP/HTTP metrics endpoint of a collector, signal path included (used as written, as the OTLP
    #: exporter spec says of a per-signal endpoint). Headers (an API key) come from the standard
    #: ``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` environment variable, never from the config.
    endpoint: str = "http://127.0.0.1:4318/v1/metrics"
    #: Seconds between two exports. The OpenTelemetry SDK's default; Prometheus scrapes every 15-60 s.
    interval_s: float = Field(60.0, ge=1.0, le=3600.0)
    #: Seconds one export may take, retries included, before it is given up (the next one sends the
    #: same cumulative totals, so nothing is lost but resolution).
    timeout_s: float = Field(10.0, gt=0.0, le=300.0)
    #: ``service.name`` of the exported resource (each process adds its own ``service.instance.id``).
    service_name: str = Field("modelyard", min_length=1, max_length=200)

    @field_validator("endpoint")
    @classmethod
    def _an_otlp_http_metrics_url(cls, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in endpoint):
            raise ValueError(f"'{endpoint}' is not an http(s) URL; write it in full, e.g. {_EXAMPLE}")
        path = parts.path.rstrip("/")
        if not path:
            raise ValueError(
                f"'{endpoint}' has no path: the exporter posts to the URL as written, and a collector"
                f" takes metrics at /v1/metrics; write {endpoint.rstrip('/')}/v1/metrics"
            )
        if path.endswith(("/v1/traces", "/v1/logs")):
            raise ValueError(
                f"'{endpoint}' is the collector's {path.rsplit('/', 1)[1]} path; metrics go to"
                f" {endpoint[: endpoint.rindex(path)]}{path.rsplit('/', 1)[0]}/metrics"
            )
        return endpoint


class MetricsConfig(Strict):
    #: Push the same series by OTLP as well (``/metrics`` always answers).
    otlp: OtlpMetricsConfig = OtlpMetricsConfig()

"""The series of ``/metrics`` pushed by OTLP/HTTP every ``metrics.otlp.interval_s`` (issue 18), with the
OpenTelemetry SDK's ``OTLPMetricExporter`` (no protobuf or HTTP written here).

Nothing runs per request. An asyncio task wakes once per interval and collects the gateway's registry on
the event loop, as a Prometheus scrape does: the series are plain numbers the request path adds to without
a lock (the loop is one thread), so reading them from another thread could see a dictionary grow mid-walk
or a histogram's buckets and sum from two different moments. The collected families are then handed to a
thread of this push's own, which translates them (:mod:`modelyard.gateway.otlp_translate`) and exports:
the HTTP call, its retries and its time-out never block the loop, and a slow collector delays only the
next push (one export at a time), never a request. The last push happens at shutdown, after the last
request is recorded.

A collector that is down or refuses costs one warning, and one more when exports work again: the SDK's
exporter logs every failed attempt and retry itself, which would be a few lines a minute for as long as
the collector is away, so its records are kept from the log while the push runs and the first one's
reason goes into the warning instead.

Each process pushes its own series under its own ``service.instance.id`` (a random UUID, as the resource
conventions advise), with its ``process.pid``: the N processes of ``serve --workers N`` are N instances
of one service, whose counters a query sums, and a restarted worker, whose counters start again at 0,
is a new instance rather than a reset of the old one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as Family

from modelyard.config.metrics import OtlpMetricsConfig
from modelyard.gateway.otlp_translate import metrics_data, translate

log = logging.getLogger("modelyard.metrics")

#: The logger the SDK's OTLP metric exporter reports its failed attempts to.
SDK_LOGGER = "opentelemetry.exporter.otlp.proto.http.metric_exporter"


class _Held(logging.Filter):
    """Keeps the SDK exporter's records out of the log, remembering the first of each export (the first
    failed attempt names the cause; the last says only that the retries ran out)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = ""

    def filter(self, record: logging.LogRecord) -> bool:
        self.first = self.first or record.getMessage()
        return False


class OtlpMetricsPush:
    """Pushes one gateway's registry by OTLP; :meth:`start` on the running loop, :meth:`close` at shutdown.
    ``exporter`` replaces the OTLP one (the SDK's ``MetricExporter`` interface)."""

    def __init__(
        self,
        config: OtlpMetricsConfig,
        registry: CollectorRegistry,
        exporter: MetricExporter | None = None,
    ) -> None:
        self.config, self._registry = config, registry
        self._exporter = exporter or OTLPMetricExporter(endpoint=config.endpoint, timeout=config.timeout_s)
        #: Resource.create also reads OTEL_RESOURCE_ATTRIBUTES (a deployment's own, e.g. host.name).
        self.resource = Resource.create(
            {
                "service.name": config.service_name,
                "service.instance.id": str(uuid.uuid4()),
                "process.pid": os.getpid(),
            }
        )
        #: The counters' start: they count from the gateway's start-up, this process's.
        self._start_ns = time.time_ns()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="modelyard-otlp-metrics")
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._held = _Held()
        logging.getLogger(SDK_LOGGER).addFilter(self._held)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every_interval(), name="otlp-metrics")

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval_s)
            await self.push()

    async def push(self) -> bool:
        """Collect now (on the loop) and export (on the push's thread); True if the collector took it."""
        families = list(self._registry.collect())
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._export, families, time.time_ns())

    def _export(self, families: Sequence[Family], now_ns: int) -> bool:
        data = metrics_data(translate(families, self._start_ns, now_ns), self.resource)
        self._held.first = ""
        try:
            ok = self._exporter.export(data) is MetricExportResult.SUCCESS
        except Exception as exc:  # the SDK returns FAILURE rather than raise; this is a bug's last guard
            self._held.first, ok = f"{type(exc).__name__}: {exc}", False
        if not ok and not self._failing:
            log.warning(
                "metrics: the OTLP export to %s failed (%s); requests are served as before, and the push"
                " is tried again every %gs (logged again when it works)",
                self.config.endpoint,
                self._held.first or "no reason given",
                self.config.interval_s,
            )
        elif ok and self._failing:
            log.warning("metrics: the OTLP export to %s works again", self.config.endpoint)
        self._failing = not ok
        return ok

    async def close(self) -> None:
        """Stop the timer, push what was counted since the last push, and shut the exporter down. Called
        after the gateway's last request is recorded; bounded by ``timeout_s`` when the collector is away."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.push()
            await asyncio.get_running_loop().run_in_executor(self._thread, self._exporter.shutdown)
        finally:
            self._thread.shutdown(wait=False)
            logging.getLogger(SDK_LOGGER).removeFilter(self._held)

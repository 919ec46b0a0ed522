"""The series of ``/metrics`` pushed by OTLP/HTTP every ``metrics.otlp.interval_s`` (issue 18), with the
OpenTelemetry SDK's ``OTLPMetricExporter`` (no protobuf or HTTP written here).

Nothing runs per request. An asyncio task wakes once per interval and, on the event loop, copies the
gateway's series (:meth:`GatewayMetrics.copied`) and collects the small side collectors (the ledger's
gauges, the budgets', whose network store is first read in the governance's thread pool, one read at a
time: :mod:`modelyard.gateway.budget_metrics`): the series are plain numbers the request path adds to without a lock (the loop is
one thread), so reading them from another thread could see a dictionary grow mid-walk or a histogram's
buckets and sum from two different moments, while a copy made on the loop is whole. Building the
Prometheus families from the copy (a hundred times the copy's cost: prometheus_client makes a sample
object per bucket), translating them (:mod:`modelyard.gateway.otlp_translate`) and exporting happen on a
thread of this push's own: the HTTP call, its retries and its time-out never block the loop, and a slow
collector delays only the next push (one export at a time), never a request. The last push happens at
shutdown, after the last request is recorded.

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
from prometheus_client.metrics_core import Metric as Family

from modelyard.config.metrics import OtlpMetricsConfig
from modelyard.gateway.metric_families import GenAiCollector
from modelyard.gateway.metrics import GatewayMetrics
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
    """Pushes one gateway's series by OTLP; :meth:`start` on the running loop, :meth:`close` at shutdown.
    ``exporter`` replaces the OTLP one (the SDK's ``MetricExporter`` interface)."""

    def __init__(
        self,
        config: OtlpMetricsConfig,
        metrics: GatewayMetrics,
        exporter: MetricExporter | None = None,
    ) -> None:
        self.config, self._metrics = config, metrics
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
        """Copy the series now (on the loop) and export them (on the push's thread); True if the
        collector took them."""
        await self._metrics.read_stores()  # a network budget store: read in a thread, not here
        genai = self._metrics.copied()
        side = [family for collector in self._metrics.side_collectors for family in collector.collect()]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._export, genai, side, time.time_ns())

    def _export(self, genai: GenAiCollector, side: Sequence[Family], now_ns: int) -> bool:
        self._held.first = ""
        try:
            families = [*genai.collect(), *side]
            data = metrics_data(translate(families, self._start_ns, now_ns), self.resource)
            ok = self._exporter.export(data) is MetricExportResult.SUCCESS
        except Exception as exc:  # the SDK returns FAILURE rather than raise: this is a bug's last guard,
            self._held.first, ok = f"{type(exc).__name__}: {exc}", False  # which must not stop the pushes
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

"""The ledger's lag in ``/metrics``: how far the database is behind the gateway, read when scraped.

Rows reach the spool on the request path and the database later (a batch, or the ingester process): a
database that is down or slow shows here as segments piling up and the oldest one's age growing, long
before anyone runs a report on a ledger that misses the last hour. Reads the spool directory (one listing
per scrape); nothing on the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelyard.ledger import spool
from modelyard.ledger.writer import Ledger

log = logging.getLogger("modelyard.ledger")


class SpoolGauges(Collector):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def collect(self) -> Iterator[Metric]:
        try:
            segments = spool.leftovers(self._ledger.spool_dir)
        except OSError as exc:  # an unreadable spool must not take the other series down
            log.warning("metrics: the ledger spool cannot be listed (%s: %s)", type(exc).__name__, exc)
            return
        oldest = min((spool.started_at(path) for path in segments), default=0.0)
        lag = GaugeMetricFamily(
            "modelyard_ledger_spool_lag_seconds",
            "Age of the oldest spool segment not yet stored in the database (0 when none waits)",
        )
        lag.add_metric([], max(time.time() - oldest, 0.0) if oldest else 0.0)
        files = GaugeMetricFamily(
            "modelyard_ledger_spool_segments", "Spool segments not yet stored, the one being written included"
        )
        files.add_metric([], len(segments))
        queued = GaugeMetricFamily(
            "modelyard_ledger_queued_rows",
            "Requests this process recorded but has not yet handed on to be stored",
        )
        queued.add_metric([], self._ledger.queued)
        yield from (lag, files, queued)

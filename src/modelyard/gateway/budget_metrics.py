"""Budget headroom in ``/metrics``: limit, spent, reserved and remaining of each configured budget in its
current window, read from the budget store when scraped or pushed (one read per counter; nothing on the
request path).

With a network store (PostgreSQL, Redis) each read is a round trip, so it never runs on the event loop:
the scrape and the OTLP push first await :meth:`BudgetGauges.refresh`, which reads in the governance's
thread pool, one read at a time (a scrape arriving meanwhile shares the read in flight), and
:meth:`~BudgetGauges.collect` yields what it read. The embedded stores (SQLite, memory) are read in
``collect`` itself, on the loop, as the settler does: a thread hop costs more than their local read.

Labels come from the config only, as for every other series: a budget on one named subject is exported
for that subject; a budget on ``subject: "*"`` for each workload, config key and config key's tenant the
config names. Runtime keys and their tenants are not labels (they are unbounded): their budgets are in
``GET /v1/usage``. USD series are in dollars; tokens and requests in their units (the ``unit`` label).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelyard.config.schema import Config
from modelyard.governance.config import EACH
from modelyard.governance.model import Subject
from modelyard.governance.runtime import Governance

log = logging.getLogger("modelyard.governance")

_LABELS = ["budget", "scope", "subject", "unit"]


def exported_subjects(config: Config) -> dict[Subject, frozenset[str]]:
    """Each subject a series is exported for, with the names of the budgets exported for it."""
    assert config.governance is not None
    named = {
        "workload": sorted(config.workloads),
        "key": sorted(config.auth.keys),
        "tenant": sorted({key.tenant for key in config.auth.keys.values()}),
    }
    out: dict[Subject, set[str]] = {}
    for budget in config.governance.budgets:
        for value in named[budget.scope] if budget.subject == EACH else [budget.subject]:
            subject = Subject(**{"key_id" if budget.scope == "key" else budget.scope: value})
            out.setdefault(subject, set()).add(budget.name)
    return {subject: frozenset(names) for subject, names in out.items()}


class BudgetGauges(Collector):
    def __init__(self, governance: Governance, config: Config) -> None:
        self._governance = governance
        self._subjects = exported_subjects(config)
        #: A network store's families, as its last read left them (collect yields these).
        self._families: list[Metric] = []
        #: The read in flight in the governance's thread pool, shared by whoever awaits meanwhile.
        self._reading: asyncio.Future[list[Metric]] | None = None

    async def refresh(self) -> None:
        """Read a network store off the event loop, one read at a time; the embedded stores wait for
        :meth:`collect` (no thread hop)."""
        offload = self._governance.settler.offload
        if offload is None:
            return
        if self._reading is None:
            self._reading = reading = asyncio.get_running_loop().run_in_executor(offload, self._read)
            reading.add_done_callback(self._read_done)
        self._families = await asyncio.shield(self._reading)

    def _read_done(self, reading: asyncio.Future[list[Metric]]) -> None:
        self._reading = None
        if not reading.cancelled() and reading.exception() is None:
            self._families = reading.result()

    def collect(self) -> Iterator[Metric]:
        if self._governance.settler.offload is None:
            yield from self._read()
        else:
            yield from self._families

    def _read(self) -> list[Metric]:
        """The four gauges of every exported budget, read from the store now; none when it is away."""
        families = {
            name: GaugeMetricFamily(f"modelyard_budget_{name}", help_text, labels=_LABELS)
            for name, help_text in (
                ("limit", "A budget's limit in its current window"),
                ("spent", "Settled spend in the budget's current window"),
                ("reserved", "Held by requests in flight"),
                ("remaining", "Headroom left: limit - spent - reserved, at least 0"),
            )
        }
        try:
            for subject, names in self._subjects.items():
                for status in self._governance.governor.status(subject):
                    line = status.line
                    if line.budget not in names:
                        continue
                    labels = [line.budget, line.scope, line.subject, line.unit]
                    scale = 1e12 if line.unit == "usd" else 1
                    for name, value in (
                        ("limit", line.limit),
                        ("spent", status.spent),
                        ("reserved", status.reserved),
                        ("remaining", status.remaining),
                    ):
                        families[name].add_metric(labels, value / scale)
        except Exception as exc:  # the store is away: the gateway's own series still answer
            log.warning("metrics: the budget store cannot be read (%s: %s)", type(exc).__name__, exc)
            return []
        return list(families.values())

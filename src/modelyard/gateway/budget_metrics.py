"""Budget headroom in ``/metrics``: limit, spent, reserved and remaining of each configured budget in its
current window, read from the budget store when scraped (one read per counter; nothing on the request path).

Labels come from the config only, as for every other series: a budget on one named subject is exported
for that subject; a budget on ``subject: "*"`` for each workload, config key and config key's tenant the
config names. Runtime keys and their tenants are not labels (they are unbounded): their budgets are in
``GET /v1/usage``. USD series are in dollars; tokens and requests in their units (the ``unit`` label).
"""

from __future__ import annotations

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

    def collect(self) -> Iterator[Metric]:
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
            return
        yield from families.values()

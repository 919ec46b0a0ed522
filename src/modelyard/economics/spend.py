"""What a workload spends on APIs today, from recorded costs or the catalog's prices.

Recorded costs win when every call of the workload has one; otherwise the traffic (or the plan) is priced at
catalog rates and said so. Every provider not run in-house counts: a provider of unknown kind that recorded
a cost was paid.
"""

from __future__ import annotations

from decimal import Decimal

from modelyard.catalog.prices import PriceCatalog
from modelyard.economics import triggers as trig
from modelyard.economics.options import price_per_request
from modelyard.economics.vendors import locus
from modelyard.economics.workload import DAYS_PER_MONTH, ModelUse, WorkloadProfile


def observed_spend(wl: WorkloadProfile, prices: PriceCatalog) -> tuple[Decimal, str]:
    """Monthly API spend: recorded costs if the traffic has them, else catalog rates × volume.

    Every provider not run in-house counts (a provider of unknown kind that recorded a cost was paid)."""
    paid = [u for u in wl.models if locus(u.provider_kind) != "self_hosted"]
    recorded = sum((u.cost_usd for u in paid), Decimal(0))
    scale = DAYS_PER_MONTH / wl.days_observed
    if recorded and all(u.unpriced == 0 for u in paid):
        return recorded * scale, "recorded costs"
    priced = (
        "planned volume priced at catalog rates"
        if wl.origin == "planned"
        else "traffic priced at catalog rates"
    )
    total = Decimal(0)
    for u in paid:
        spend = _use_spend(u, wl, prices, recorded=False)
        if spend is None:
            return recorded * scale, f"recorded costs only: no catalog price for {u.provider_kind}/{u.model}"
        total += spend
    return total * scale, priced


def _use_spend(
    use: ModelUse, wl: WorkloadProfile, prices: PriceCatalog, recorded: bool = True
) -> Decimal | None:
    """Spend of one (model, provider) over the observed window: recorded, else priced; ``None``: neither."""
    if recorded and use.cost_usd and use.unpriced == 0:
        return use.cost_usd
    price = prices.price_for(use.provider_kind or "", use.model)
    return None if price is None else use.requests * price_per_request(price, wl)


def monthly_use_spend(prices: PriceCatalog) -> trig.SpendOf:
    def spend(wl: WorkloadProfile, use: ModelUse) -> Decimal | None:
        total = _use_spend(use, wl, prices)
        return None if total is None else total * DAYS_PER_MONTH / wl.days_observed

    return spend

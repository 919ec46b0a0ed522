"""How old the catalog's figures are, and which of them a decision relies on past a chosen age.

Every API price, GPU offer and serving profile carries the day it was read or measured. A price list goes
stale silently (GPU rents fell by half in a year; API prices fall ~30%/year), so ``check``, ``decide`` and
``modelyard catalog`` name the figures older than ``max_age_days`` instead of using them quietly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from modelyard.catalog.gpus import GpuCatalog
from modelyard.catalog.prices import PriceCatalog
from modelyard.catalog.serving import ServingProfile

#: The default age past which a figure is named as stale: about two quarters of price moves.
MAX_AGE_DAYS = 180


@dataclass(frozen=True, slots=True)
class Dated:
    """One dated figure: what it is, when it was read, where from."""

    kind: str  # "API price", "GPU offer", "serving profile"
    name: str
    as_of: date
    source: str

    def age_days(self, today: date) -> int:
        return (today - self.as_of).days


def dated_figures(
    prices: PriceCatalog | None = None,
    gpus: GpuCatalog | None = None,
    *,
    api_models: Iterable[tuple[str, str]] | None = None,
    offers: Iterable[str] | None = None,
    profiles: Iterable[ServingProfile] = (),
) -> list[Dated]:
    """The dated figures a run relies on: the prices of ``api_models`` ((provider kind, model) pairs), the
    GPU ``offers`` (``vendor/gpu`` keys) and the ``profiles`` used. ``None`` means every entry of that catalog;
    a model or offer the catalog lacks is skipped (the engine reports it elsewhere)."""
    out: list[Dated] = []
    if prices is not None:
        pairs = sorted(prices.prices) if api_models is None else list(dict.fromkeys(api_models))
        for provider, model in pairs:
            price = prices.price_for(provider, model)
            if price is not None:
                out.append(Dated("API price", f"{provider}/{model}", price.as_of, price.source))
    if gpus is not None:
        keys = [o.key for o in gpus.offers] if offers is None else list(dict.fromkeys(offers))
        by_key = {o.key: o for o in gpus.offers}
        out += [Dated("GPU offer", k, by_key[k].as_of, by_key[k].source) for k in keys if k in by_key]
    for p in profiles:
        name = f"{p.model} on {p.gpu_count}x {p.gpu} ({p.quantization}, {p.source})"
        out.append(Dated("serving profile", name, p.date, p.reference or p.engine))
    return out


def stale_figures(
    prices: PriceCatalog | None = None,
    gpus: GpuCatalog | None = None,
    *,
    today: date,
    max_age_days: int = MAX_AGE_DAYS,
    api_models: Iterable[tuple[str, str]] | None = None,
    offers: Iterable[str] | None = None,
    profiles: Iterable[ServingProfile] = (),
) -> list[str]:
    """One sentence per figure older than ``max_age_days`` on ``today``, oldest first, naming it, its date,
    its source and how to refresh it. Arguments as :func:`dated_figures`."""
    figures = dated_figures(prices, gpus, api_models=api_models, offers=offers, profiles=profiles)
    old = sorted((f for f in figures if f.age_days(today) > max_age_days), key=lambda f: (f.as_of, f.name))
    return [
        f"{f.kind} {f.name} is {f.age_days(today)} days old (as of {f.as_of.isoformat()}, over {max_age_days}; "
        f"source: {f.source}): {_REFRESH[f.kind]}"
        for f in old
    ]


_REFRESH = {
    "API price": "refresh it with `modelyard catalog import-litellm` or a price file (catalog.price_files)",
    "GPU offer": "put your current quote in a GPU file (catalog.gpu_files)",
    "serving profile": "re-measure with `modelyard bench-endpoint`",
}


def age_summary(figures: list[Dated], today: date) -> str:
    """One line for a report's first screen: the date range of each kind of figure and the oldest's age."""
    parts = []
    for kind in ("API price", "GPU offer", "serving profile"):
        dates = [f.as_of for f in figures if f.kind == kind]
        if dates:
            oldest, newest = min(dates), max(dates)
            span = oldest.isoformat() if oldest == newest else f"{oldest.isoformat()} to {newest.isoformat()}"
            parts.append(f"{kind}s {span} (oldest {(today - oldest).days} days)")
    return "; ".join(parts) or "no dated figures"

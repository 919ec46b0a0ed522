"""Migration triggers evaluated on the traffic; each fired trigger carries its evidence in numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from modelyard.economics.org import OrgProfile, WorkloadPolicy
from modelyard.economics.vendors import locus
from modelyard.economics.workload import ModelUse, WorkloadProfile

#: A use's spend per month in USD, or ``None`` when it has no recorded cost and no catalog price.
SpendOf = Callable[[WorkloadProfile, ModelUse], Decimal | None]


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    fired: bool
    evidence: str
    workload: str | None = None


def volume_past_break_even(
    wl: WorkloadProfile, sustained: Decimal | None, org: OrgProfile, pair: str = ""
) -> Trigger:
    """Fires when each of the last N calendar months (scaled to full months) is past the break-even volume."""
    n = org.triggers.sustained_months
    if sustained is None:
        return Trigger(
            "volume past break-even", False, "self-hosting is never cheaper at any volume", wl.name
        )
    months = list(wl.monthly_requests.items())[-n:]
    fired = (
        len(months) == n and all(Decimal(v) >= sustained for _, v in months) and wl.days_observed >= 28 * n
    )
    seen = ", ".join(f"{k}: {v:,}" for k, v in months)
    return Trigger(
        "volume past break-even", fired,
        f"break-even {sustained:,.0f} req/mo (run-rate basis{pair}); now {wl.requests_per_month:,.0f}/mo; last months {seen}"
        + ("" if wl.days_observed >= 28 * n else f" (only {wl.days_observed:.0f} days observed)"),
        wl.name,
    )  # fmt: skip


def latency_missed(wl: WorkloadProfile, org: OrgProfile) -> Trigger:
    slo = org.workloads.get(wl.name, WorkloadPolicy()).slo
    checks = [
        ("e2e", slo.e2e_p95_ms, wl.latency_ms.get("p95")),
        ("TTFT", slo.ttft_p95_ms, wl.ttft_ms.get("p95")),
    ]
    missed = [f"{n} p95 {v:.0f} ms > objective {o:.0f} ms" for n, o, v in checks if o and v and v > o]
    set_ = [n for n, o, _ in checks if o]
    seen = [n for n, o, v in checks if o and v]
    evidence = (
        "; ".join(missed)
        if missed
        else ("met" if seen else "not observed: the traffic records no latency")
        if set_
        else "no latency objective set"
    )
    return Trigger("p95 latency objective missed", bool(missed), evidence, wl.name)


def restricted_external(wl: WorkloadProfile) -> Trigger:
    """Fires when restricted data reached an external API vendor.

    A workload is restricted when the org profile or its traffic says so (the stricter wins); then every
    call of it counts, not only the rows that carried the class themselves."""
    n, unknown = wl.restricted_external, wl.restricted_unknown
    evidence = (f"{n:,} calls of restricted data went to external API providers" if n else "none seen") + (
        f"; {unknown:,} more went to providers of unknown kind (check where they run)" if unknown else ""
    )
    return Trigger("restricted data sent to an external API", n > 0, evidence, wl.name)


def api_spend_over(wl: WorkloadProfile, spend: Decimal, how: str, org: OrgProfile) -> Trigger:
    threshold = org.triggers.monthly_api_spend_usd
    return Trigger(
        "monthly API spend over threshold", spend > threshold,
        f"${spend:,.0f}/month ({how}, scaled to 30.4 days) vs threshold ${threshold:,.0f}", wl.name,
    )  # fmt: skip


def price_change(
    wl: WorkloadProfile, pct: Decimal, spend_month: Decimal, flips: bool, cheaper: str
) -> Trigger:
    new = spend_month * (1 + pct / 100)
    return Trigger(
        f"API price change {pct:+.0f}%", flips,
        f"current API option ${spend_month:,.0f}/month → ${new:,.0f}/month; "
        + (f"the cheaper option over the horizon becomes {cheaper}" if flips else "the recommendation does not change"),
        wl.name,
    )  # fmt: skip


def vendor_concentration(
    profiles: list[WorkloadProfile], org: OrgProfile, monthly_spend: SpendOf
) -> tuple[Trigger, str | None]:
    """Org-wide: the share of external API dollars carried by the largest vendor.

    Dollars only (requests are not dollars), and only external API vendors (:mod:`.vendors`): a self-hosted
    server is never a vendor. ``monthly_spend(workload, use)`` is the use's spend per month, recorded or
    priced from the catalog, or ``None`` when it cannot be priced: such uses are left out and said so."""
    spend: dict[str, Decimal] = {}
    unpriced: set[str] = set()
    unknown: set[str] = set()
    for wl in profiles:
        for use in wl.models:
            where = locus(use.provider_kind)
            if where == "unknown":
                unknown.add(use.provider_kind or "(none)")
            if where != "external":
                continue
            dollars = monthly_spend(wl, use)
            if dollars is None:
                unpriced.add(f"{use.provider_kind}/{use.model}")
                continue
            vendor = (use.provider_kind or "").lower()
            spend[vendor] = spend.get(vendor, Decimal(0)) + dollars
    caveats = "".join(
        [
            f"; left out, no price: {', '.join(sorted(unpriced))}" if unpriced else "",
            f"; left out, provider of unknown kind: {', '.join(sorted(unknown))}" if unknown else "",
        ]
    )
    total = sum(spend.values(), Decimal(0))
    if not total:
        return Trigger("vendor concentration", False, "no priced external API spend" + caveats), None
    vendor, top = max(spend.items(), key=lambda kv: kv[1])
    share = top / total * 100
    limit = org.triggers.vendor_concentration_pct
    fired = share > limit
    evidence = (
        f"{vendor} carries {share:.0f}% of external API spend (${top:,.0f} of ${total:,.0f}/month; "
        f"threshold {limit:.0f}%); vendors: {len(spend)}" + caveats
    )
    return Trigger("vendor concentration", fired, evidence), vendor if fired else None

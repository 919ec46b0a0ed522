"""The machine-readable decision document. Schema (version 1) documented in ``docs/decide.md``.

Money is a string of USD with cents ("1234.56") so no consumer reads it as a binary float; volumes are
requests per month; break-even volumes are ``null`` when self-hosting never becomes cheaper.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from modelyard.economics.engine import Decision, WorkloadDecision
from modelyard.economics.options import Option
from modelyard.economics.provenance import inputs
from modelyard.economics.quality import QualityInput, quality_inputs
from modelyard.economics.tco import BUCKETS, Tco

SCHEMA_VERSION = 1
CENT = Decimal("0.01")
NANO = Decimal("1e-9")


def money(x: Decimal) -> str:
    return str(x.quantize(CENT))


def _vol(x: Fraction | None) -> float | None:
    return None if x is None else round(float(x), 1)


def document(decision: Decision) -> dict[str, Any]:
    org = decision.org
    p = decision.portfolio
    quality = quality_inputs(decision)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_on": decision.today.isoformat(),
        "organisation": org.organisation,
        "horizon_months": org.horizon_months,
        "traffic_source": decision.traffic_source,
        "catalogs": {
            "prices": decision.catalogs.prices.version,
            "gpus": decision.catalogs.gpus.version,
            "serving": decision.catalogs.serving.version,
        },
        "portfolio": {
            "assignment": p.assignment,
            "total_usd": money(p.total),
            "standalone_total_usd": money(p.standalone_total),
            "reuse_savings_usd": money(p.reuse_savings),
            "pools": p.pools,
            "stacks": p.stacks,
            "solver_status": p.status,
            "candidates": {"given": p.size[0], "after_exact_pruning": p.size[1]},
        },
        "triggers": [_trigger(t) for t in decision.org_triggers],
        "notes": decision.notes,
        "inputs": [line.to_json() for line in inputs(decision)],
        "workloads": [_workload(d, org.horizon_months, quality[d.profile.name]) for d in decision.workloads],
    }


def _trigger(t: Any) -> dict[str, Any]:
    return {"name": t.name, "fired": t.fired, "evidence": t.evidence, "workload": t.workload}


def _workload(d: WorkloadDecision, horizon: int, quality: list[QualityInput]) -> dict[str, Any]:
    wl = d.profile
    be = d.break_even
    return {
        "name": wl.name,
        "profile": {
            "origin": wl.origin,
            "class": wl.workload_class,
            "data_class": wl.data_class,
            "days_observed": float(wl.days_observed),
            "requests_observed": wl.requests,
            "requests_per_month": round(float(wl.requests_per_month), 1),
            "tokens_per_request": {
                "input": round(float(wl.input_tokens_mean), 1),
                "cached_input": round(float(wl.cached_input_tokens_mean), 1),
                "output": round(float(wl.output_tokens_mean), 1),
            },
            "avg_rps": wl.avg_rps,
            "peak_rps": wl.peak_rps,
            "peak_to_avg": wl.peak_to_avg,
            "concurrency": {"mean": wl.concurrency_mean, "peak": wl.concurrency_peak},
            "latency_ms": wl.latency_ms,
            "ttft_ms": wl.ttft_ms,
            "error_rate": wl.error_rate,
            "growth_per_month": float(d.demand.growth_per_month),
            "growth_source": d.growth_source,
            "monthly_requests": wl.monthly_requests,
            "hour_of_day": wl.hour_of_day,
            "models": [
                {"model": u.model, "provider": u.provider_kind, "requests": u.requests} for u in wl.models
            ],
            "api_spend_per_month_usd": money(d.api_spend_month),
            "api_spend_source": d.api_spend_source,
            "confidence": {
                "extrapolated": wl.thin_trace is not None,
                "why": wl.thin_trace,
                "days_observed": float(wl.days_observed),
                "requests_observed": wl.requests,
            },
        },
        "options": [_option(o, d.tcos.get(o.key), d, horizon) for o in d.options],
        "quality_inputs": [q.to_json() for q in quality],
        "break_even": None if be is None else _break_even(d, horizon),
        "sensitivity": None
        if d.tornado_base is None
        else {
            "metric": "horizon TCO of self-hosting minus the API option (negative: self-hosting is cheaper)",
            "base_usd": money(d.tornado_base),
            "bars": [
                {
                    "parameter": b.parameter,
                    "low": b.low_label,
                    "high": b.high_label,
                    "low_usd": money(b.low),
                    "high_usd": money(b.high),
                }
                for b in d.tornado
            ],
        },
        "recommendation": {
            "kind": d.recommendation,
            "option": d.chosen,
            "headline": d.headline,
            "why": d.why,
            "conditions": [c.to_json() for c in d.conditions],
        },
        "triggers": [_trigger(t) for t in d.triggers],
    }


def _break_even(d: WorkloadDecision, horizon: int) -> dict[str, Any]:
    be = d.break_even
    assert be is not None
    reason = None
    if d.reason_pair is not None and d.reason_pair[0] in d.break_evens:
        api_key, self_key = d.reason_pair
        pair = d.break_evens[api_key].per_option[self_key]
        reason = {
            "api_option": api_key,
            "self_hosted_option": self_key,
            "first_requests_per_month": _vol(pair.first),
            "sustained_requests_per_month": _vol(pair.sustained),
            "horizon_basis_requests_per_month": _dvol(d.horizon.get(d.reason_pair)),
        }
    return {
        "api_option": be.api,
        "self_hosted_option": be.self_hosted,
        "basis": "run-rate: month-0 prices, one-off costs spread over the horizon",
        "first_requests_per_month": _vol(be.first),
        "sustained_requests_per_month": _vol(be.sustained),
        "horizon_basis": f"today's volume from which the {horizon}-month TCO (growth, price trends, "
        "one-offs in month 0) of self-hosting stays no dearer; found numerically, within 1% above",
        "horizon_basis_requests_per_month": _dvol(d.horizon_break_even),
        "cap_requests_per_month": _vol(be.cap),
        "never_means": "no feasible self-hosted option breaks even below the cap",
        "current_requests_per_month": round(float(d.profile.requests_per_month), 1),
        "all_self_hosted_options": {
            k: {"first": _vol(v.first), "sustained": _vol(v.sustained)} for k, v in be.per_option.items()
        },
        "all_api_options": {k: _vol(v.sustained) for k, v in d.break_evens.items()},
        "lowest_self_hosted_per_api_option": {k: v.self_hosted for k, v in d.break_evens.items()},
        "reason_pair": reason,
    }


def _dvol(x: Decimal | None) -> float | None:
    return None if x is None else round(float(x), 1)


def _option(o: Option, tco: Tco | None, d: WorkloadDecision, horizon: int) -> dict[str, Any]:
    card = d.scores.get(o.key)
    return {
        "key": o.key,
        "kind": o.kind,
        "label": o.label,
        "model": o.model,
        "vendor": o.vendor,
        "throughput_source": o.source if o.kind == "self_hosted" else None,
        "reference": o.reference,
        "price_source": o.price_source,
        "price_per_request_usd": None
        if o.price_per_request is None
        else str(o.price_per_request.quantize(NANO)),
        "gpu_hourly_usd": None if o.gpu_hourly is None else str(o.gpu_hourly),
        "gpu": o.gpu,
        "gpu_count": o.gpu_count or None,
        "replica_requests_per_s": None if o.replica is None else round(float(o.replica.requests_per_s), 4),
        "replica_concurrency": None if o.replica is None else o.replica.level.concurrency,
        "latency_meets_objective": None if o.replica is None else o.replica.meets_slo,
        "quality": o.quality,
        "latency_p95_ms": o.latency_p95_ms,
        "split": None
        if o.parts is None
        else {"api_share": str(o.to_api), "self_hosted": o.parts[0].key, "api": o.parts[1].key},
        "feasible": o.feasible,
        "infeasible_reason": o.infeasible,
        "tco": None if tco is None else _tco(tco, horizon),
        "scorecard": None
        if card is None
        else {
            "weighted": str(card.weighted),
            "scores": [{"dimension": s.dimension, "score": str(s.score), "why": s.why} for s in card.scores],
        },
    }


def _tco(t: Tco, horizon: int) -> dict[str, Any]:
    spans = sorted({min(12, horizon), horizon})
    return {
        "totals_usd": {str(h): money(t.total(h)) for h in spans},
        "buckets_usd": {str(h): {b: money(t.bucket(b, h)) for b in BUCKETS} for h in spans},
        "months": [
            {
                "month": i + 1,
                "requests": round(float(m.requests), 1),
                **{b: money(getattr(m, b)) for b in BUCKETS},
                "total": money(m.total),
                "replicas": m.replicas or None,
                "utilization": None if m.utilization is None else round(float(m.utilization), 4),
            }
            for i, m in enumerate(t.months)
        ],
    }

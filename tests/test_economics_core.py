"""Hand-computed cases the engine must reproduce exactly: capacity, each TCO bucket, break-even."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from modelyard.catalog.serving import Level, ServingProfile, Workload
from modelyard.economics.breakeven import ApiCurve, StepCurve, solve
from modelyard.economics.capacity import ReplicaCapacity, fixed_replica_hours, replica_capacity, replicas_for
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile, Slo
from modelyard.economics.tco import Demand, month_cost, tco

D = Decimal


def org(**over: object) -> OrgProfile:
    raw: dict[str, object] = {
        "organisation": "hand",
        "horizon_months": 12,
        "engineering": {"loaded_cost_per_year": 120000},  # 10,000 a month
        "stacks": {
            "api": {
                "build_engineer_months": 1,
                "run_fte": "0.1",
                "security_review": 5000,
                "risk_premium_pct": 10,
            },
            "self_hosted": {
                "build_engineer_months": 2,
                "run_fte": "0.5",
                "ops_per_month": 1000,
                "security_review": 20000,
                "hosting_overhead_pct": 10,
                "risk_premium_pct": 20,
            },
        },
        "capacity": {"peak_headroom": "1.5", "redundancy": 1, "hours_per_month": 730},
        "candidates": {"api": [{"provider": "openai", "model": "gpt-4o-mini"}]},
    }
    raw.update(over)
    return OrgProfile.model_validate(raw)


LEVEL = Level(concurrency=4, requests_per_s=1, output_tokens_per_s=100, e2e_p95_ms=900, ttft_p95_ms=100)
API = Option(key="api:x/y", kind="api", label="x/y", model="y", vendor="x", price_per_request=D("0.001"))
SELF = Option(
    key="self_hosted:m@v/g", kind="self_hosted", label="m", model="m", vendor="v", gpu_hourly=D(2), gpu_count=1,
    replica=ReplicaCapacity(requests_per_s=D(1), level=LEVEL, meets_slo=True),
)  # fmt: skip
FLAT = Demand(
    requests_per_month=D(1_000_000), growth_per_month=D(0), peak_to_avg=D(2), hour_of_day=[D(1) / 24] * 24
)


def test_api_month_buckets_by_hand() -> None:
    m0, m1 = month_cost(API, FLAT, org(), 0), month_cost(API, FLAT, org(), 1)
    # direct 1e6 × 0.001; platform = 1 eng-month + 0.1 FTE; operations = the review; risk 10% of direct.
    assert (m0.direct, m0.hosting, m0.platform, m0.operations, m0.risk, m0.reuse) == (
        D(1000),
        D(0),
        D(11000),
        D(5000),
        D(100),
        D(0),
    )
    assert m0.total == D(17100)
    assert m1.total == D(2100)
    assert tco(API, FLAT, org()).totals[12] == D(17100) + 11 * D(2100)


def test_self_hosted_month_buckets_by_hand() -> None:
    m0 = month_cost(SELF, FLAT, org(), 0)
    # avg 1e6/2,629,800 s = 0.38 req/s; peak ×2 ×1.5 headroom = 1.14 → 2 replicas + 1 spare = 3 × 730 h × $2.
    assert m0.replicas == 3
    assert m0.direct == D(4380)
    assert m0.hosting == D("438.0")
    assert m0.risk == D("963.60")
    assert m0.platform == D(25000)  # 2 eng-months + 0.5 FTE
    assert m0.operations == D(21000)  # ops 1000 + review 20000
    assert m0.total == D("51781.60")
    assert month_cost(SELF, FLAT, org(), 5).total == D("11781.60")


def test_existing_stack_is_reuse_savings() -> None:
    o = org(stacks={"api": {"build_engineer_months": 1, "security_review": 5000, "existing": True}})
    m0 = month_cost(API, FLAT, o, 0)
    assert m0.reuse == D(15000)
    assert m0.total == D(1000)


def test_price_trend_and_growth_by_hand() -> None:
    o = org(trends={"api_price_pct_per_year": -19})  # 0.81 ** (6/12) = 0.9 exactly
    grown = Demand(D(1_000_000), D("0.1"), D(2), FLAT.hour_of_day)
    m6 = month_cost(API, grown, o, 6)
    assert m6.requests == D(1_000_000) * D("1.1") ** 6
    assert m6.direct == pytest.approx(D(1_000_000) * D("1.1") ** 6 * D("0.001") * D("0.9"), rel=D("1e-20"))


def test_capacity_by_hand() -> None:
    assert replicas_for(D("1.14"), D(1), D(1), 1) == 3
    assert replicas_for(D(0), D(5), D("1.2"), 1) == 2  # one serving replica minimum, plus the spare
    n, hours = fixed_replica_hours(D(2_629_800), D(1), D("0.5"), D(1), 0, D(730))
    assert (n, hours) == (2, D(1460))


def test_replica_capacity_picks_best_level_meeting_slo() -> None:
    profile = ServingProfile(
        model="m", engine="e", gpu="g", gpu_count=1, quantization="bf16", date=date(2026, 1, 1), source="measured",
        workload=Workload(input_tokens_mean=100, output_tokens_mean=100),
        levels=[
            Level(concurrency=1, requests_per_s=1, output_tokens_per_s=100, e2e_p95_ms=500),
            Level(concurrency=8, requests_per_s=5, output_tokens_per_s=500, e2e_p95_ms=1500),
            Level(concurrency=32, requests_per_s=9, output_tokens_per_s=900, e2e_p95_ms=4000),
        ],
    )  # fmt: skip
    cap = replica_capacity(profile, D(250), Slo(e2e_p95_ms=2000))
    assert cap is not None and cap.level.concurrency == 8
    assert cap.requests_per_s == D(2)  # 500 tokens/s ÷ 250 tokens per request
    assert replica_capacity(profile, D(250), Slo(e2e_p95_ms=100)) is None


def test_break_even_by_hand() -> None:
    api = ApiCurve(fixed=Fraction(100), per_request=Fraction(1, 100))
    step = StepCurve(
        fixed=Fraction(500), per_replica=Fraction(300), replicas_per_volume=Fraction(1, 100_000), spares=1
    )
    be = solve(api, step)
    # Step 1 (≤100k req): B = 500 + 2×300 = 1100 = A(100k). Step 2: B = 1400 = A(130k); from there on, cheaper.
    assert be.first == 100_000
    assert be.sustained == 130_000
    assert api.cost(Fraction(130_000)) == step.cost(Fraction(130_000))
    assert api.cost(Fraction(100_001)) < step.cost(Fraction(100_001))


def test_break_even_never_when_replicas_cost_more_than_api_traffic() -> None:
    api = ApiCurve(fixed=Fraction(100), per_request=Fraction(1, 100))
    step = StepCurve(
        fixed=Fraction(500), per_replica=Fraction(300), replicas_per_volume=Fraction(1, 10_000), spares=1
    )
    assert solve(api, step).sustained is None

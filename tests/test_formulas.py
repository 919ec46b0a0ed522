"""The money formulas agree to the cent in every number system and at every place that applies them."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.economics.breakeven import api_curve, step_curve
from modelyard.economics.formulas import hosting_on, marked_up, rate, risk_on
from modelyard.economics.grid import evaluate
from modelyard.economics.hybrid import _marked_up
from modelyard.economics.portfolio import _replica_month
from modelyard.economics.tco import Demand, month_cost
from tests.test_economics_core import API, SELF, org

D = Decimal
money = st.decimals(min_value=0, max_value=10**7, places=2)
pct = st.decimals(min_value=0, max_value=200, places=2)


@settings(max_examples=200, deadline=None)
@given(spend=money, h=pct, r=pct)
def test_every_number_system_gives_the_same_cents(spend: Decimal, h: Decimal, r: Decimal) -> None:
    exact = marked_up(spend, rate(h), rate(r))
    assert exact == spend + hosting_on(spend, rate(h)) + risk_on(spend, hosting_on(spend, rate(h)), rate(r))
    as_fraction = marked_up(Fraction(spend), rate(Fraction(h)), rate(Fraction(r)))
    assert as_fraction == Fraction(exact)  # Decimal keeps 28 digits: these inputs need fewer
    as_float = marked_up(float(spend), rate(float(h)), rate(float(r)))
    assert abs(D(as_float) - exact) < D("0.005")
    arr = marked_up(np.array([float(spend)]), np.array([float(h) / 100]), np.array([float(r) / 100]))
    assert abs(D(float(arr[0])) - exact) < D("0.005")


@settings(max_examples=60, deadline=None)
@given(h=pct, r=pct, volume=st.integers(min_value=1, max_value=10**8))
def test_the_api_markup_is_the_same_in_tco_grid_breakeven_and_hybrids(
    h: Decimal, r: Decimal, volume: int
) -> None:
    o = org(stacks={"api": {"hosting_overhead_pct": h, "risk_premium_pct": r}})
    demand = Demand(D(volume), D(0), D(1), [D(1) / 24] * 24)
    m0 = month_cost(API, demand, o, 0)
    variable = m0.direct + m0.hosting + m0.risk  # per-volume part of month 0
    per_request = variable / volume
    assert abs(Fraction(per_request) - api_curve(API, o).per_request) < Fraction(1, 10**12)
    assert abs(_marked_up(API, o) - per_request) < D("1e-12")
    b = evaluate([(API, demand)], o).buckets[0, 0]
    assert abs(D(float(b[0] + b[1] + b[4])) - variable) < D("0.005") + variable * D("1e-12")


@settings(max_examples=60, deadline=None)
@given(h=pct, r=pct)
def test_the_gpu_markup_is_the_same_in_tco_portfolio_and_breakeven(h: Decimal, r: Decimal) -> None:
    o = org(stacks={"self_hosted": {"hosting_overhead_pct": h, "risk_premium_pct": r}})
    demand = Demand(D(1000), D(0), D(1), [D(1) / 24] * 24)
    assert SELF.gpu_hourly is not None
    replica = _replica_month(o, SELF.gpu_hourly * SELF.gpu_count, 0)
    assert Fraction(replica) == step_curve(SELF, demand, o).per_replica
    m0 = month_cost(SELF, demand, o, 0)
    assert m0.replicas > 0
    assert abs((m0.direct + m0.hosting + m0.risk) / m0.replicas - replica) < D("1e-9")

"""Properties that truly hold: the curves meet at break-even, prices and traffic move costs one way."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.economics.breakeven import ApiCurve, StepCurve, solve
from modelyard.economics.tco import Adjust, Demand, tco
from tests.test_economics_core import API, SELF, org

fractions = st.fractions(min_value=Fraction(1, 10), max_value=Fraction(10_000)).filter(lambda f: f > 0)


@settings(max_examples=150, deadline=None)
@given(fa=fractions, fb=fractions, price=st.fractions(Fraction(1, 10**6), Fraction(1, 10)),
       u=fractions, cap=st.integers(1_000, 5_000_000), spares=st.integers(0, 3))  # fmt: skip
def test_curves_meet_at_break_even_and_self_host_stays_cheaper(
    fa: Fraction, fb: Fraction, price: Fraction, u: Fraction, cap: int, spares: int
) -> None:
    api = ApiCurve(fixed=fa, per_request=price)
    step = StepCurve(fixed=fb, per_replica=u, replicas_per_volume=Fraction(1, cap), spares=spares)
    be = solve(api, step)
    if be.first is not None and be.first > 0:
        assert api.cost(be.first) == step.cost(be.first)
        assert api.cost(be.first * Fraction(999, 1000)) < step.cost(be.first * Fraction(999, 1000))
    if be.sustained is not None:
        assert be.first is not None and be.first <= be.sustained
        for factor in (1, Fraction(3, 2), 2, 7, 50):
            v = be.sustained * factor + (0 if factor == 1 else Fraction(1, 3))
            assert api.cost(v) >= step.cost(v)
    else:
        # No sustained break-even: past step e0/β every step starts with the API cheaper.
        beta = u - price * cap
        e0 = fa - fb - u * spares
        assert beta >= 0
        if beta > 0:
            j = max(1, math.ceil(e0 / beta)) + 2
            v = Fraction((j - 1) * cap) + Fraction(1, 3)
            assert api.cost(v) < step.cost(v)


@settings(max_examples=40, deadline=None)
@given(lo=st.decimals("0.5", "3", places=2), bump=st.decimals("0", "2", places=2))
def test_raising_gpu_price_never_lowers_self_host_tco(lo: Decimal, bump: Decimal) -> None:
    demand = Demand(Decimal(2_000_000), Decimal("0.02"), Decimal(3), [Decimal(1) / 24] * 24)
    cheap = tco(SELF, demand, org(), Adjust(gpu_price=lo)).total(12)
    dear = tco(SELF, demand, org(), Adjust(gpu_price=lo + bump)).total(12)
    assert dear >= cheap


@settings(max_examples=40, deadline=None)
@given(volume=st.integers(0, 10**9), more=st.integers(0, 10**9))
def test_more_traffic_never_lowers_api_cost(volume: int, more: int) -> None:
    def cost(v: int) -> Decimal:
        return tco(API, Demand(Decimal(v), Decimal(0), Decimal(1), [Decimal(1) / 24] * 24), org()).total(12)

    assert cost(volume + more) >= cost(volume)

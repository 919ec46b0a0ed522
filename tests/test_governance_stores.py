"""Every budget store (memory, SQLite, PostgreSQL, Redis) keeps the same contract: reserve all lines or
none, settle to the actual amount exactly once, sweep what a crashed worker abandoned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelyard.governance.budgets import lines_for
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, BudgetExceeded, RateLimited, Subject
from modelyard.governance.store import BudgetStore
from tests.governance_support import StoreSpec, pg_url, redis_prefix, store_spec

__all__ = ["pg_url", "redis_prefix", "store_spec"]  # fixtures used by name

T0 = 1_800_000_000.0  # 2027-01-15, mid-window for a month budget


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


CONFIG = GovernanceConfig.model_validate(
    {
        "reservation_ttl_s": 60,
        "budgets": [
            # $1 a month for tenant acme, 1000 tokens a month per key.
            {
                "name": "acme",
                "scope": "tenant",
                "subject": "acme",
                "unit": "usd",
                "limit": "1",
                "window": {"kind": "month"},
            },
            {"name": "keytok", "scope": "key", "unit": "tokens", "limit": 1000, "window": {"kind": "month"}},
            {
                "name": "watch",
                "scope": "tenant",
                "unit": "usd",
                "limit": "0.5",
                "window": {"kind": "day"},
                "mode": "soft",
            },
        ],
    }
)
WHO = Subject("acme", "k1", "chat")
CENT = 10**10  # one cent in pico-USD


@pytest.fixture
def store(store_spec: StoreSpec) -> Iterator[BudgetStore]:
    opened = store_spec.open()
    yield opened
    opened.close()


def counters(
    store: BudgetStore, gov: Governor, reservation_lines: tuple[object, ...]
) -> dict[str, tuple[int, int]]:
    out = {}
    for line in reservation_lines:
        state = store.state(line.counter)  # type: ignore[attr-defined]
        assert state is not None
        out[line.budget] = (state.spent, state.reserved)  # type: ignore[attr-defined]
    return out


def test_reserve_then_settle_to_the_exact_cost(store: BudgetStore) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    held = gov.reserve(WHO, Estimate(30 * CENT, 100, 200))
    assert counters(store, gov, held.lines) == {
        "acme": (0, 30 * CENT),
        "keytok": (0, 300),
        "watch": (0, 30 * CENT),
    }
    gov.settle(held, Actual(cost_pico=7 * CENT + 3, tokens=140))
    assert counters(store, gov, held.lines) == {
        "acme": (7 * CENT + 3, 0),
        "keytok": (140, 0),
        "watch": (7 * CENT + 3, 0),
    }
    # Settling twice (a retry of the recorder, a cancel racing a completion) changes nothing.
    assert gov.settle(held, Actual(cost_pico=99 * CENT, tokens=999)) == []
    assert counters(store, gov, held.lines)["acme"] == (7 * CENT + 3, 0)


@pytest.mark.parametrize(
    ("outcome", "actual"),
    [
        ("error before any byte: nothing billed", Actual(0, 0)),
        ("client cancelled mid-stream: billed what was generated", Actual(2 * CENT, 37)),
        ("upstream cut the stream: billed the partial usage", Actual(CENT, 12)),
    ],
)
def test_every_outcome_settles_to_its_actual_amount_possibly_zero(
    store: BudgetStore, outcome: str, actual: Actual
) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    held = gov.reserve(WHO, Estimate(40 * CENT, 100, 300))
    gov.settle(held, actual)
    got = counters(store, gov, held.lines)
    assert got["acme"] == (actual.cost_pico, 0), outcome
    assert got["keytok"] == (actual.tokens, 0), outcome


def test_a_full_budget_refuses_naming_the_budget_its_window_and_reset(store: BudgetStore) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    first = gov.reserve(WHO, Estimate(60 * CENT, 10, 10))
    with pytest.raises(BudgetExceeded) as refused:
        gov.reserve(WHO, Estimate(50 * CENT, 10, 10))
    err = refused.value
    assert (err.status, err.code, err.line.budget) == (429, "budget_exceeded", "acme")
    body = err.to_body()["error"]
    assert body["budget"]["resets_at"] == "2027-02-01T00:00:00+00:00"
    assert body["budget"]["window"] == "month (UTC)" and body["budget"]["limit"] == "1"
    assert "has $0.4 left of $1" in body["message"] and "needs up to $0.5" in body["message"]
    assert 0 < err.retry_after <= 17 * 86400
    # The refused request left nothing held on the budgets that had room.
    assert counters(store, gov, first.lines)["keytok"] == (0, 20)
    # Headroom that remains is still usable: no false refusal.
    gov.reserve(WHO, Estimate(40 * CENT, 10, 10))


def test_a_soft_budget_never_refuses(store: BudgetStore) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    for _ in range(3):  # 3 x $0.30 > the soft $0.50
        gov.settle(gov.reserve(Subject("acme", None), Estimate(30 * CENT, 0, 0)), Actual(30 * CENT))


def test_a_request_larger_than_the_whole_budget_is_refused_without_touching_counters(
    store: BudgetStore,
) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    with pytest.raises(BudgetExceeded, match="'keytok'"):
        gov.reserve(Subject("other", "k9"), Estimate(None, 600, 600))


def test_reservations_abandoned_by_a_crashed_worker_expire(store: BudgetStore) -> None:
    clock = Clock()
    crashed = Governor(CONFIG, store, clock=clock)
    for _ in range(3):
        crashed.reserve(WHO, Estimate(30 * CENT, 0, 100))  # never settled: the worker was killed
    survivor = Governor(CONFIG, store, clock=clock)
    with pytest.raises(BudgetExceeded):
        survivor.reserve(WHO, Estimate(30 * CENT, 0, 100))
    clock.now += 61  # past the 60 s TTL: the next reservation sweeps first
    held = survivor.reserve(WHO, Estimate(30 * CENT, 0, 100))
    assert counters(store, survivor, held.lines)["acme"] == (0, 30 * CENT)
    # A worker that settles after its reservation was swept changes nothing (it must not double count).
    assert store.settle("no-such-reservation", Actual(CENT, 1)) == []


def test_expired_reservations_can_be_charged_instead_of_released(store: BudgetStore) -> None:
    clock = Clock()
    cfg = CONFIG.model_copy(update={"on_expiry": "charge"})
    gov = Governor(cfg, store, clock=clock)
    held = gov.reserve(WHO, Estimate(30 * CENT, 0, 100))
    clock.now += 61
    assert gov.sweep_if_due(clock.now) == 1
    assert counters(store, gov, held.lines)["acme"] == (30 * CENT, 0)


def test_a_batch_of_settles_equals_settling_each_in_turn(store: BudgetStore) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    held = [gov.reserve(WHO, Estimate(10 * CENT, 10, 20)) for _ in range(5)]
    actuals = [Actual(cost_pico=i * CENT + i, tokens=i) for i in range(5)]
    gov.settle_many(list(zip(held[:4], actuals[:4], strict=True)))
    gov.settle(held[4], actuals[4])
    gov.settle_many([(held[0], Actual(CENT, 1))])  # already settled: nothing changes
    assert counters(store, gov, held[0].lines) == {
        "acme": (sum(a.cost_pico for a in actuals), 0),
        "keytok": (sum(a.tokens for a in actuals), 0),
        "watch": (sum(a.cost_pico for a in actuals), 0),
    }


RATES = GovernanceConfig.model_validate(
    {"rate_limits": [{"scope": "key", "requests_per_minute": 3, "tokens_per_minute": 1000}]}
)


def test_rate_limits_in_the_store_answer_with_retry_after_and_settle_tokens(store: BudgetStore) -> None:
    clock = Clock(T0 + 15)  # 15 s into a minute
    gov = Governor(RATES, store, clock=clock)
    who = Subject("acme", "k1")
    first = gov.reserve(who, Estimate(None, 100, 300))  # 400 tokens held
    gov.settle(first, Actual(tokens=120))  # the difference comes back
    gov.reserve(who, Estimate(None, 100, 300))
    with pytest.raises(RateLimited) as too_many_tokens:
        gov.reserve(who, Estimate(None, 100, 500))  # 120 + 400 + 600 > 1000
    assert too_many_tokens.value.limit == "1000 tokens/min"
    gov.reserve(who, Estimate(None, 10, 10))  # a refusal held nothing: this third request fits
    with pytest.raises(RateLimited) as too_many_requests:
        gov.reserve(who, Estimate(None, 1, 1))
    err = too_many_requests.value
    assert (err.status, err.code, err.limit, err.retry_after) == (
        429,
        "rate_limit_exceeded",
        "3 requests/min",
        45,
    )
    gov.reserve(Subject("acme", "k2"), Estimate(None, 1, 1))  # each key counts alone
    clock.now += 45  # the next minute
    gov.reserve(who, Estimate(None, 1, 1))


def test_rate_limits_can_live_in_the_limits_package_instead() -> None:
    config = RATES.model_copy(update={"rate_limits_in": "limits"})
    assert config.rate_limit_budgets() == ()
    assert [b.name for b in RATES.rate_limit_budgets()] == ["rate:0:rpm", "rate:0:tpm"]
    lines = lines_for(config, Subject("acme", "k1"), Estimate(None, 1, 1), T0)
    assert lines == ()


def test_status_shows_each_budget_spent_held_and_left_in_its_window(store: BudgetStore) -> None:
    gov = Governor(CONFIG, store, clock=Clock())
    gov.settle(gov.reserve(WHO, Estimate(30 * CENT, 100, 100)), Actual(cost_pico=25 * CENT, tokens=150))
    gov.reserve(WHO, Estimate(10 * CENT, 50, 50))  # still in flight
    shown = {s.line.budget: s.to_json() for s in gov.status(WHO)}
    assert shown["acme"] | {"window_start": None} == {
        "budget": "acme", "scope": "tenant", "subject": "acme", "unit": "usd", "mode": "hard",
        "limit": "1", "spent": "0.25", "reserved": "0.1", "remaining": "0.65",
        "window": "month (UTC)", "window_start": None, "resets_at": "2027-02-01T00:00:00+00:00",
    }  # fmt: skip
    assert (shown["keytok"]["spent"], shown["keytok"]["reserved"], shown["keytok"]["remaining"]) == (
        150,
        100,
        750,
    )
    assert shown["watch"]["mode"] == "soft"
    assert [s.remaining for s in gov.status(Subject("nobody"))] == [CONFIG.budgets[2].limit_units]

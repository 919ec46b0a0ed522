"""Settlements leave the request path: the settlements of one event-loop turn are applied as one batch
(one settle_many), a network store's batches and reservations run in a thread rather than on the loop, a
graceful close applies every queued settlement, and a client that leaves while its reservation is on the
way leaves nothing held."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from modelyard.gateway.budgeting import reserve_async
from modelyard.gateway.targets import Target
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.governor import Governor
from modelyard.governance.model import Actual, CounterState, Reservation, Subject
from modelyard.governance.runtime import Governance
from modelyard.governance.store import MemoryBudgetStore

CONFIG = GovernanceConfig.model_validate(
    {
        "budgets": [
            {"name": "req", "scope": "tenant", "unit": "requests", "limit": 1000, "window": {"kind": "day"}}
        ]
    }
)
WHO = Subject("acme", "k1", "chat")
COUNTER_PREFIX = "req|"


class WatchedStore(MemoryBudgetStore):
    """The in-process store, noting each batch it settles and the thread it ran on; ``gate`` (when
    set) holds reservations and settlements until the test opens it, as a slow network would."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, int]] = []  # (settlements, thread id)
        self.gate: threading.Event | None = None
        self.reserve_threads: list[int] = []

    def reserve(self, reservation: Reservation) -> int | None:
        self.reserve_threads.append(threading.get_ident())
        if self.gate is not None:
            self.gate.wait(10)
        return super().reserve(reservation)

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append((len(settlements), threading.get_ident()))
        return super().settle_many(settlements)

    def counter(self) -> CounterState:
        (name,) = [c for c in self._counters if c.startswith(COUNTER_PREFIX)]
        state = self.state(name)
        assert state is not None
        return state


def governance(store: WatchedStore, *, network: bool) -> Governance:
    return Governance(CONFIG, Governor(CONFIG, store), keys=None, network=network)  # type: ignore[arg-type]


def held(gov: Governance) -> Reservation:
    return gov.governor.reserve(WHO, Estimate(0, 10, 10))


async def test_the_settlements_of_one_loop_turn_are_one_batch_applied_on_the_loop() -> None:
    store = WatchedStore()
    gov = governance(store, network=False)
    for _ in range(10):
        gov.settler.submit(held(gov), Actual(0, 5), WHO, -15)
    assert store.batches == [] and store.counter().reserved == 10  # nothing settled during the turn
    await asyncio.sleep(0)
    assert store.batches == [(10, threading.get_ident())]
    assert (store.counter().spent, store.counter().reserved) == (10, 0)
    gov.close()


async def test_a_network_stores_batches_run_in_a_thread_one_at_a_time_and_close_applies_the_rest() -> None:
    store = WatchedStore()
    gov = governance(store, network=True)
    reservations = [held(gov) for _ in range(5)]
    store.gate = threading.Event()
    gov.settler.submit(reservations[0], Actual(), WHO, 0)
    await asyncio.sleep(0.05)  # the first batch is in its thread, held at the gate
    for reservation in reservations[1:]:
        gov.settler.submit(reservation, Actual(), WHO, 0)
    await asyncio.sleep(0.05)
    assert gov.settler.queued == 4  # waiting for the batch under way, not a second thread
    store.gate.set()
    for _ in range(100):
        if len(store.batches) == 2:
            break
        await asyncio.sleep(0.01)
    assert [n for n, _ in store.batches] == [1, 4]
    assert all(thread != threading.get_ident() for _, thread in store.batches)
    gov.settler.submit(held(gov), Actual(), WHO, 0)
    gov.close()  # a graceful stop: the last settlement is applied before the store closes
    assert (store.counter().spent, store.counter().reserved) == (6, 0)


def test_without_an_event_loop_a_settlement_is_applied_at_once() -> None:
    store = WatchedStore()
    gov = governance(store, network=False)
    gov.settler.submit(held(gov), Actual(), WHO, 0)
    assert store.counter().reserved == 0 and len(store.batches) == 1
    gov.close()


TARGET = Target("m", "p", "openai", "external", "m", "chat", None, None, None)  # type: ignore[arg-type]


async def test_a_network_reservation_runs_off_the_loop_and_a_client_gone_meanwhile_leaves_nothing_held() -> (
    None
):
    store = WatchedStore()
    gov = governance(store, network=True)
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    hold = await reserve_async(gov, WHO, body, "chat", [TARGET])
    assert store.reserve_threads[-1] != threading.get_ident()
    gov.settler.submit(hold.reservation, Actual(), WHO, 0)
    await asyncio.sleep(0.05)
    assert (store.counter().spent, store.counter().reserved) == (1, 0)

    store.gate = threading.Event()
    task = asyncio.create_task(reserve_async(gov, WHO, body, "chat", [TARGET]))
    await asyncio.sleep(0.05)
    task.cancel()  # the client went away while the store was still answering
    with pytest.raises(asyncio.CancelledError):
        await task
    store.gate.set()
    for _ in range(100):
        if store.counter().reserved == 0:
            break
        await asyncio.sleep(0.01)
    # The late hold was released, and as a request never sent it counts for nothing.
    assert (store.counter().spent, store.counter().reserved) == (1, 0)
    gov.close()


async def test_the_reservations_of_one_loop_turn_are_one_transaction_with_the_answers_of_one_by_one(
    tmp_path: Any,
) -> None:
    """On SQLite: 5 requests admitted in one turn against room for 3 — one reserve_many, the first three
    held, the last two refused, exactly as reserving them one at a time would."""
    from modelyard.governance.store_sqlite import SQLiteBudgetStore

    class Counted(SQLiteBudgetStore):
        batches: ClassVar[list[int]] = []

        def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
            self.batches.append(len(reservations))
            return super().reserve_many(reservations)

    config = GovernanceConfig.model_validate(
        {
            "budgets": [
                {"name": "req", "scope": "tenant", "unit": "requests", "limit": 3, "window": {"kind": "day"}}
            ]
        }
    )
    store = Counted(str(tmp_path / "gov.db"))
    gov = Governance(config, Governor(config, store), keys=None)  # type: ignore[arg-type]
    reservations = [gov.governor.prepare(WHO, Estimate(0, 1, 1)) for _ in range(5)]
    answers = await asyncio.gather(*(gov.settler.hold(r) for r in reservations))
    assert answers == [None, None, None, 0, 0]
    assert store.batches == [5]
    (counter,) = [r.lines[0].counter for r in reservations[:1]]
    state = store.state(counter)
    assert state is not None and state.reserved == 3
    for reservation in reservations[:3]:
        gov.settler.submit(reservation, Actual(), WHO, 0)
    gov.settler.close()  # applies the queued settlements
    state = store.state(counter)
    assert state is not None and (state.spent, state.reserved) == (3, 0)
    gov.close()


@pytest.mark.parametrize("seed", range(6))
def test_sqlite_batches_answer_and_count_as_reserving_and_settling_one_by_one(
    tmp_path: Any, seed: int
) -> None:
    """Random batches of reservations on a few shared, nearly full budgets (some batches fit whole, some
    only in part) and of settlements (repeats included): SQLite's batched answers and counters equal the
    in-process store's, which does one at a time."""
    import random

    from modelyard.governance.store_sqlite import SQLiteBudgetStore

    rng = random.Random(seed)
    config = GovernanceConfig.model_validate(
        {
            "budgets": [
                {"name": "t", "scope": "tenant", "unit": "tokens", "limit": 400, "window": {"kind": "day"}},
                {"name": "r", "scope": "key", "unit": "requests", "limit": 30, "window": {"kind": "day"}},
                {
                    "name": "s",
                    "scope": "tenant",
                    "unit": "usd",
                    "limit": "1",
                    "window": {"kind": "day"},
                    "mode": "soft",
                },
            ]
        }
    )
    one_by_one, batched = MemoryBudgetStore(), SQLiteBudgetStore(str(tmp_path / "gov.db"))
    governor = Governor(config, one_by_one)
    held: list[Reservation] = []
    for _ in range(25):
        batch = [
            governor.prepare(
                Subject(rng.choice(["a", "b"]), rng.choice(["k1", "k2"])),
                Estimate(rng.randrange(10**9), rng.randrange(60), 0),
            )
            for _ in range(rng.randrange(1, 8))
        ]
        answers = batched.reserve_many(batch)
        assert answers == [one_by_one.reserve(r) for r in batch]
        held += [r for r, answer in zip(batch, answers, strict=True) if answer is None]
        rng.shuffle(held)
        settling = [(r.id, Actual(rng.randrange(10**9), rng.randrange(50))) for r in held[: rng.randrange(4)]]
        settling += settling[:1]  # a settlement sent twice changes nothing the second time
        batched.settle_many(settling)
        one_by_one.settle_many(settling)
        held = held[len(settling) - 1 :] if settling else held
    counters = {line.counter for r in held for line in r.lines} | set(one_by_one._counters)
    for counter in counters:
        assert batched.state(counter) == one_by_one.state(counter)
    batched.close()

"""What the mapped counter file adds to the store contract (the shared suite runs it as ``mapped``): an
operation cut by ``kill -9`` is finished by the next process, counts survive a restart and start from the
SQLite store's, and a full table or a foreign file is an error that names the fix."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from modelyard.governance import mapped_layout as L
from modelyard.governance.model import Actual, Line, Reservation, Window
from modelyard.governance.store_mapped import MappedBudgetStore, StoreFull
from modelyard.governance.store_sqlite import SQLiteBudgetStore

WINDOW = Window(1_800_000_000.0, 1_802_000_000.0, "month (UTC)")


def _reservation(
    rid: str, amount: int = 10, limit: int = 100, expires_at: float = 1_800_000_600.0
) -> Reservation:
    lines = (
        Line("usd|acme|1", "usd", "tenant", "acme", "usd", amount, limit, True, WINDOW),
        Line("tok|k1|1", "tok", "key", "k1", "tokens", 2 * amount, 10**6, False, WINDOW),
    )
    return Reservation(rid, lines, expires_at)


def _killed_after_journalling(path: str) -> None:
    """Reserve, but die (as ``kill -9`` would) once the journal is marked, before any counter is written."""
    store = MappedBudgetStore(path)

    def die_midway() -> None:
        mm, writes = store._mm, store._writes
        log = b"".join([L.ENTRY.pack(offset, len(data)) + data for offset, data in writes])
        mm[L.JOURNAL : L.JOURNAL + len(log)] = log
        L.U32.pack_into(mm, L.JOURNAL_LEN_AT, len(log))
        os._exit(9)

    store._flush = die_midway  # type: ignore[method-assign]
    store.reserve(_reservation("r-killed"))


def test_an_operation_cut_by_a_kill_is_finished_by_the_next_process(tmp_path: Path) -> None:
    path = str(tmp_path / "governance.db")
    MappedBudgetStore(path).reserve(_reservation("r-before"))
    child = multiprocessing.get_context("spawn").Process(target=_killed_after_journalling, args=(path,))
    child.start()
    child.join(30)
    assert child.exitcode == 9
    store = MappedBudgetStore(path)
    state = store.state("usd|acme|1")
    assert state is not None and (state.spent, state.reserved) == (0, 20)  # both reservations, whole
    assert [s.reserved for s in store.settle("r-killed", Actual(3, 5))] == [10, 20]  # r-before's left
    assert store.sweep(1_800_000_601.0) == 1  # r-before, still held, expires like any other
    assert (store.state("tok|k1|1").spent, store.state("tok|k1|1").reserved) == (5, 0)  # type: ignore[union-attr]
    store.close()


def test_counts_survive_a_restart_and_a_hold_can_be_settled_after_it(tmp_path: Path) -> None:
    path = str(tmp_path / "governance.db")
    store = MappedBudgetStore(path)
    store.reserve(_reservation("r1"))  # held across the restart
    store.reserve(_reservation("r2"))
    store.settle("r2", Actual(4, 6))
    store.close()
    again = MappedBudgetStore(path)
    assert again.state("usd|acme|1") is not None
    assert (again.state("usd|acme|1").spent, again.state("usd|acme|1").reserved) == (4, 10)  # type: ignore[union-attr]
    states = again.settle("r1", Actual(7, 9))
    assert [(s.counter, s.spent, s.reserved) for s in states] == [("usd|acme|1", 11, 0), ("tok|k1|1", 15, 0)]
    assert again.settle("r1", Actual(7, 9)) == []
    again.close()


def test_a_new_file_starts_from_the_sqlite_stores_counters_and_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "governance.db")
    before = SQLiteBudgetStore(path)
    before.reserve(_reservation("r1"))
    before.reserve(_reservation("r2"))
    before.settle("r2", Actual(30, 40))
    before.close()
    store = MappedBudgetStore(path)
    state = store.state("usd|acme|1")
    assert state is not None and (state.limit, state.spent, state.reserved) == (100, 30, 10)
    # The hold made under SQLite is settled (or swept) here like any other.
    assert [(s.spent, s.reserved) for s in store.settle("r1", Actual(1, 2))] == [(31, 0), (42, 0)]
    assert store.reserve(_reservation("r3", amount=70)) == 0  # the limit still holds: 31 spent + 70 > 100
    store.close()


def test_a_full_hold_table_names_the_fix_and_leaves_counters_untouched(tmp_path: Path) -> None:
    store = MappedBudgetStore(str(tmp_path / "governance.db"), hold_slots=2)
    store.reserve(_reservation("r1"))
    store.reserve(_reservation("r2"))
    with pytest.raises(StoreFull, match=r"governance\.store\.kind: sqlite"):
        store.reserve(_reservation("r3"))
    assert store.state("usd|acme|1").reserved == 20  # type: ignore[union-attr]
    store.settle("r2", Actual(requests=0))
    with pytest.raises(StoreFull):  # a batch fails whole: r4 is not left held when r5 finds no slot
        store.reserve_many([_reservation("r4"), _reservation("r5")])
    assert store.state("usd|acme|1").reserved == 10  # type: ignore[union-attr]
    assert store.settle("r4", Actual()) == []
    store.settle("r1", Actual())
    assert store.reserve(_reservation("r3")) is None  # the freed slot is used again
    store.close()


def test_a_file_of_something_else_is_refused_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "governance.db-counters").write_bytes(b"not a counter file at all")
    with pytest.raises(ValueError, match=r"governance\.store\.path"):
        MappedBudgetStore(str(tmp_path / "governance.db"))


def test_old_windows_are_pruned_and_every_process_forgets_their_slots(tmp_path: Path) -> None:
    path = str(tmp_path / "governance.db")
    first, second = MappedBudgetStore(path), MappedBudgetStore(path)
    first.reserve(_reservation("r1"))
    first.settle("r1", Actual(5, 5))
    assert second.state("usd|acme|1") is not None  # cached in the second process's map of slots
    first.sweep(WINDOW.end + 36 * 86400)
    assert second.state("usd|acme|1") is None
    assert second.reserve(_reservation("r2")) is None
    assert first.state("usd|acme|1").reserved == 10  # type: ignore[union-attr]
    first.close()
    second.close()


def _reserve_many_times(store: MappedBudgetStore, prefix: str, times: int) -> None:
    for i in range(times):
        assert store.reserve(_reservation(f"{prefix}{i}", amount=1, limit=10**9)) is None


def test_a_forked_worker_takes_the_lock_with_a_file_of_its_own(tmp_path: Path) -> None:
    """A worker forked after the store was opened must not share its parent's open file: ``flock`` belongs
    to the open file, so parent and child would both hold it at once and lose each other's updates."""
    store = MappedBudgetStore(str(tmp_path / "governance.db"))
    child = multiprocessing.get_context("fork").Process(target=_reserve_many_times, args=(store, "c", 3000))
    child.start()
    _reserve_many_times(store, "p", 3000)
    child.join(60)
    assert child.exitcode == 0
    assert store.state("usd|acme|1").reserved == 6000  # type: ignore[union-attr]
    store.close()

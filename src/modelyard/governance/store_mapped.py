"""Budget counters in a file every ``--workers`` process maps into its memory: exact across the processes
of one machine, like the SQLite store, for a fraction of a SQLite transaction's cost.

Why not SQLite: a request alone pays two transactions there (reserve, settle), four statements each and a
WAL commit: ~450k instructions, ~128 µs of CPU (bench/README.md). Here an operation is an ``flock`` of the
file, a few ``struct`` reads and writes into the map, and an unlock.

The file (``<path>-counters``, beside the SQLite file ``governance.store.path`` names; layout in
:mod:`.mapped_layout`) holds:

- a table of counters (open addressing on the counter's CRC-32). A slot never moves while in use, so each
  process caches counter → slot; freeing slots (old windows) bumps a generation that empties the caches.
- a table of holds, one per in-flight reservation: its id, expiry and lines (counter slot, unit, amount).
  The sweep and a lookup by id scan only up to the most ever in flight (the high-water mark).
- a redo journal (:mod:`.mapped_file`): each operation (one reservation, one settlement, one expired
  hold) is all or nothing, even under ``kill -9``; the kernel drops a dead process's ``flock``.

The map is ``MAP_SHARED``: a write is in the kernel's page cache when it is made, so it survives a killed
worker and a restart (month windows); like SQLite with ``synchronous=OFF``, only an OS crash or power cut
can lose the last counts. A new file starts from the SQLite store's counters and holds at ``path`` when
that file exists, so moving from ``kind: sqlite`` keeps the month's spend. Alert claims, rare and off the
request path, stay in that SQLite file (opened on the first claim).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path

import orjson

from modelyard.governance import mapped_layout as L
from modelyard.governance.mapped_file import MappedFile, StoreFull
from modelyard.governance.model import Actual, CounterState, Reservation
from modelyard.governance.store import oversized
from modelyard.governance.store_sqlite import SQLiteBudgetStore

#: Counters of windows that ended this long ago, with nothing held, are dropped (as the SQLite store does).
_KEEP_OLD_WINDOWS_S = 35 * 86400
_PRUNE_EVERY_S = 3600.0
_FIX = "move the file away to start a larger one, or use governance.store.kind: sqlite"


class MappedBudgetStore(MappedFile):
    """The store contract (``store.py``) over the counter file ``<path>-counters``."""

    def __init__(
        self, path: str, *, counter_slots: int = L.COUNTER_SLOTS, hold_slots: int = L.HOLD_SLOTS
    ) -> None:
        self._sqlite_path = path
        self._alerts: SQLiteBudgetStore | None = None
        self._here: dict[str, int] = {}  # reservation id → hold slot, for holds made by this process
        self._free_here: list[int] = []  # hold slots this process freed: tried first
        super().__init__(None if path == ":memory:" else path + "-counters", counter_slots, hold_slots)

    def _fill_new(self) -> None:
        if self._file is not None and Path(self._sqlite_path).exists():
            self._import_sqlite()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._here = {}

    # Counters.

    def _find(self, counter: str, claimed: set[int] | None = None) -> tuple[int, bool]:
        """The slot of ``counter`` and True, or a free slot to create it in (none of ``claimed``) and False."""
        slot = self._names.get(counter)
        if slot is not None:
            return slot, True
        key = L.counter_key(counter)
        mm, n, free = self._mm, self._counter_slots, -1
        i = zlib.crc32(key) % n
        for _ in range(n):
            at = L.COUNTERS_AT + i * L.COUNTER_SIZE
            state, _, _, length = L.STATE_HEAD.unpack_from(mm, at)
            if state == 1:
                if length == len(key) and mm[at + L.NAME_AT : at + L.NAME_AT + length] == key:
                    self._names[counter], self._slot_names[i] = i, counter
                    return i, True
            elif claimed is None or i not in claimed:
                if state == 0:
                    return (i if free < 0 else free), False
                free = i if free < 0 else free
            i = (i + 1) % n
        if free >= 0:
            return free, False
        raise StoreFull(f"the budget counter table is full ({n} counters): {_FIX}")

    def _counter_state(self, slot: int) -> CounterState:
        at = L.COUNTERS_AT + slot * L.COUNTER_SIZE
        limit, spent, reserved = L.LIMIT_SPENT_RESERVED.unpack_from(self._mm, at + 8)
        name = self._slot_names.get(slot)
        if name is None:
            length = L.STATE_HEAD.unpack_from(self._mm, at)[3]
            name = self._slot_names[slot] = self._mm[at + L.NAME_AT : at + L.NAME_AT + length].decode()
        return CounterState(name, limit, spent, reserved)

    def _count_created(self, created: int) -> None:
        used = L.U32.unpack_from(self._mm, L.COUNTERS_USED_AT)[0] + created
        if used > self._counter_slots * 9 // 10:  # open addressing slows down past this
            raise StoreFull(f"the budget counter file {self._file} holds {used - created} counters: {_FIX}")
        self._writes.append((L.COUNTERS_USED_AT, L.U32.pack(used)))

    # Holds.

    def _take_hold_slot(self) -> int:
        mm, base = self._mm, self._holds_at
        while self._free_here:
            slot = self._free_here.pop()
            if mm[base + slot * L.HOLD_SIZE] == 0:  # not taken since by another process
                return slot
        high = L.U32.unpack_from(mm, L.HIGH_WATER_AT)[0]
        if high < self._hold_slots:
            self._writes.append((L.HIGH_WATER_AT, L.U32.pack(high + 1)))
            return int(high)
        self._free_here = [s for s in range(high) if mm[base + s * L.HOLD_SIZE] == 0]
        if not self._free_here:
            raise StoreFull(f"{high} reservations are in flight, the most {self._file} holds: {_FIX}")
        return self._free_here.pop()

    def _hold_lines(self, slot: int) -> list[tuple[int, int, int]]:
        """A hold's lines: (counter slot, unit code, amount)."""
        at = self._holds_at + slot * L.HOLD_SIZE
        first = at + L.LINES_AT
        return [L.LINE.unpack_from(self._mm, first + k * L.LINE.size) for k in range(self._mm[at + 1])]

    def _hold_slot_of(self, reservation_id: str) -> int | None:
        """The slot holding ``reservation_id``: this process's own first, else a scan of the used slots."""
        rid = reservation_id.encode()
        mm, base = self._mm, self._holds_at
        mine = self._here.pop(reservation_id, None)
        candidates = [mine] if mine is not None else range(L.U32.unpack_from(mm, L.HIGH_WATER_AT)[0])
        for slot in candidates:
            at = base + slot * L.HOLD_SIZE
            if mm[at] == 1 and mm[at + 2] == len(rid) and mm[at + 16 : at + 16 + len(rid)] == rid:
                return slot
        return None

    def _hold(self, rid: str, expires_at: float, lines: list[tuple[int, int, int]]) -> int:
        raw = rid.encode()
        if len(raw) > L.MAX_ID:
            raise ValueError(f"a reservation id is at most {L.MAX_ID} bytes")
        slot = self._take_hold_slot()
        record = L.HOLD_RECORDS[len(lines)].pack(
            1, len(lines), len(raw), self._pid, expires_at, raw, *[x for line in lines for x in line]
        )
        self._writes.append((self._holds_at + slot * L.HOLD_SIZE, record))
        return slot

    def _release_hold(self, slot: int, used: tuple[int, int, int] | None) -> list[CounterState]:
        """Release a hold's lines, spending ``used`` by unit (None: all it held); its counters, after."""
        mm, writes, states = self._mm, self._writes, []
        for counter, unit, amount in self._hold_lines(slot):
            at = L.COUNTERS_AT + counter * L.COUNTER_SIZE
            limit, spent, reserved = L.LIMIT_SPENT_RESERVED.unpack_from(mm, at + 8)
            spent += amount if used is None else used[unit]
            reserved -= amount
            writes.append((at + 16, L.SPENT_RESERVED.pack(spent, reserved)))
            name = self._slot_names.get(counter) or self._counter_state(counter).counter
            states.append(CounterState(name, limit, spent, reserved))
        writes.append((self._holds_at + slot * L.HOLD_SIZE, b"\0"))
        return states

    # The contract (store.py).

    def reserve(self, reservation: Reservation) -> int | None:
        return self.reserve_many([reservation])[0]

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        """Each in turn, one journalled operation each; if one fails, those held before it are released
        too, so that the batch fails as a whole, as in the SQLite store's single transaction."""
        out: list[int | None] = [oversized(r.lines) for r in reservations]
        held: list[str] = []
        self._acquire()
        try:
            for i, reservation in enumerate(reservations):
                if out[i] is None and reservation.lines:
                    out[i] = self._reserve_one(reservation)
                    if out[i] is None:
                        held.append(reservation.id)
        except BaseException:
            self._writes.clear()
            for reservation_id in held:
                slot = self._hold_slot_of(reservation_id)
                if slot is not None:
                    self._release_hold(slot, (0, 0, 0))
                    self._flush()
            raise
        finally:
            self._release()
        return out

    def _reserve_one(self, reservation: Reservation) -> int | None:
        lines = reservation.lines
        if len(lines) > L.MAX_LINES:
            raise ValueError(
                f"a request drew on {len(lines)} budgets and rate limits, more than the {L.MAX_LINES} a"
                " hold of the budget counter file has room for: use governance.store.kind: sqlite"
            )
        mm, names, writes = self._mm, self._names, self._writes
        held: list[tuple[int, int, int]] = []
        created: dict[int, str] = {}
        for i, line in enumerate(lines):
            slot = names.get(line.counter)
            if slot is None:
                slot, exists = self._find(line.counter, set(created))  # not a slot an earlier line took
            else:
                exists = True
            if exists:
                at = L.COUNTERS_AT + slot * L.COUNTER_SIZE
                _, spent, reserved = L.LIMIT_SPENT_RESERVED.unpack_from(mm, at + 8)
                if line.hard and spent + reserved + line.amount > line.limit:
                    writes.clear()
                    return i
                if mm[at + 2] != line.hard:
                    writes.append((at + 2, b"\1" if line.hard else b"\0"))
                writes.append(
                    (at + 8, L.LIMIT_SPENT_RESERVED.pack(line.limit, spent, reserved + line.amount))
                )
            else:  # a hard line of a new counter fits: oversized() let it through
                key = L.counter_key(line.counter)
                unit = L.UNIT_CODE[line.unit]
                head = L.COUNTER.pack(
                    1, unit, line.hard, len(key), line.limit, 0, line.amount, line.window.end
                )
                writes.append((L.COUNTERS_AT + slot * L.COUNTER_SIZE, head + key))
                created[slot] = line.counter
            held.append((slot, L.UNIT_CODE[line.unit], line.amount))
        if created:
            self._count_created(len(created))
        hold = self._hold(reservation.id, reservation.expires_at, held)
        self._flush()
        for slot, counter in created.items():
            self._names[counter], self._slot_names[slot] = slot, counter
        self._here[reservation.id] = hold
        return None

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        return self.settle_many([(reservation_id, actual)])[0]

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        out: list[list[CounterState]] = []
        self._acquire()
        try:
            for reservation_id, actual in settlements:
                slot = self._hold_slot_of(reservation_id)
                if slot is None:  # settled already, or swept: nothing is held any more
                    out.append([])
                    continue
                states = self._release_hold(slot, (actual.cost_pico, actual.tokens, actual.requests))
                self._flush()
                self._free_here.append(slot)
                out.append(states)
        finally:
            self._release()
        return out

    def sweep(self, now: float, *, charge: bool = False) -> int:
        dropped = 0
        self._acquire()
        try:
            mm, base = self._mm, self._holds_at
            for slot in range(L.U32.unpack_from(mm, L.HIGH_WATER_AT)[0]):
                at = base + slot * L.HOLD_SIZE
                if mm[at] == 1 and L.HOLD.unpack_from(mm, at)[4] < now:
                    self._release_hold(slot, None if charge else (0, 0, 0))
                    self._flush()
                    self._free_here.append(slot)
                    dropped += 1
            if now - L.LAST_PRUNE.unpack_from(mm, L.LAST_PRUNE_AT)[0] > _PRUNE_EVERY_S:
                self._prune(now)
        finally:
            self._release()
        return dropped

    def _prune(self, now: float) -> None:
        """Free the counters of windows long past that nothing holds (a month of history is plenty).

        Without the journal: the generation goes up first (every process forgets its cached slots), so
        a prune cut short by a kill has only freed fewer counters, and overstated how many are used."""
        mm, base = self._mm, self._holds_at
        in_use = {
            counter
            for slot in range(L.U32.unpack_from(mm, L.HIGH_WATER_AT)[0])
            if mm[base + slot * L.HOLD_SIZE] == 1
            for counter, _, _ in self._hold_lines(slot)
        }
        self._generation = L.GENERATION.unpack_from(mm, L.GENERATION_AT)[0] + 1
        L.GENERATION.pack_into(mm, L.GENERATION_AT, self._generation)
        self._names.clear()
        self._slot_names.clear()
        freed = 0
        for slot in range(self._counter_slots):
            at = L.COUNTERS_AT + slot * L.COUNTER_SIZE
            if mm[at] != 1 or slot in in_use:
                continue
            *_, reserved, window_end = L.COUNTER.unpack_from(mm, at)
            if reserved == 0 and window_end < now - _KEEP_OLD_WINDOWS_S:
                mm[at] = 2
                freed += 1
        L.U32.pack_into(mm, L.COUNTERS_USED_AT, L.U32.unpack_from(mm, L.COUNTERS_USED_AT)[0] - freed)
        L.LAST_PRUNE.pack_into(mm, L.LAST_PRUNE_AT, now)

    def state(self, counter: str) -> CounterState | None:
        self._acquire()
        try:
            slot, exists = self._find(counter)
            if not exists:
                return None
            found = self._counter_state(slot)
            return CounterState(counter, found.limit, found.spent, found.reserved)
        finally:
            self._release()

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        if self._alerts is None:
            self._alerts = SQLiteBudgetStore(self._sqlite_path)
        return self._alerts.claim_alert(counter, threshold, now)

    def close(self) -> None:
        if self._alerts is not None:
            self._alerts.close()
        super().close()

    def _import_sqlite(self) -> None:
        """Fill a new file from the SQLite store at ``path``: its counters, and its holds in flight."""
        db = sqlite3.connect(f"file:{self._sqlite_path}?mode=ro", uri=True)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"gov_counters", "gov_holds"} <= tables:
                return
            rows = db.execute(
                "SELECT counter, unit, limit_amount, hard, spent, reserved, window_end FROM gov_counters"
            )
            for counter, unit, limit, hard, spent, reserved, window_end in rows:
                slot, _ = self._find(counter)
                key = L.counter_key(counter)
                head = L.COUNTER.pack(
                    1, L.UNIT_CODE[unit], hard, len(key), limit, spent, reserved, window_end
                )
                self._writes.append((L.COUNTERS_AT + slot * L.COUNTER_SIZE, head + key))
                self._count_created(1)
                self._flush()
            for rid, lines, expires_at in db.execute("SELECT reservation, lines, expires_at FROM gov_holds"):
                held = [(self._find(c)[0], L.UNIT_CODE[u], a) for c, u, a in orjson.loads(lines)]
                self._hold(str(rid), float(expires_at), held)
                self._flush()
        finally:
            self._writes.clear()
            db.close()


__all__ = ["MappedBudgetStore", "StoreFull"]

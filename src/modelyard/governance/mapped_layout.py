"""The layout of the budget counter file (``store_mapped.py``): where each table starts, what a slot holds.

0       header: magic, slot counts, generation, hold high-water mark, counters used, last prune
4096    redo journal: length of the pending operation's log (0: none), then its writes
65536   counter slots (256 bytes each), then hold slots
"""

from __future__ import annotations

import hashlib
import struct

MAGIC = b"MYGOVMM3"
COUNTER_SLOTS = 1 << 16
HOLD_SLOTS = 1 << 15
#: Lines a reservation may hold (budgets and rate limits that apply to one request).
MAX_LINES = 16

HEADER = struct.Struct("<8sII")  # magic, counter slots, hold slots
GENERATION_AT, GENERATION = 16, struct.Struct("<Q")  # bumped when counter slots are freed
JOURNAL_LEN_AT, U32 = 24, struct.Struct("<I")
GENERATION_JOURNAL = struct.Struct("<QI")  # both read at once, each time the lock is taken
HIGH_WATER_AT = 28  # hold slots ever used
COUNTERS_USED_AT = 32
LAST_PRUNE_AT, LAST_PRUNE = 40, struct.Struct("<d")  # when old windows' counters were last dropped

JOURNAL = 4096
JOURNAL_END = 65536
ENTRY = struct.Struct("<II")  # one write of the log: offset, length, then the bytes
COUNTERS_AT = JOURNAL_END

#: Counter slot: state (0 empty, 1 used, 2 freed), unit, hard, name length; limit, spent, reserved;
#: window end; then the name.
COUNTER = struct.Struct("<BBBxHxxqqqd")
COUNTER_SIZE = 256
STATE_HEAD = struct.Struct("<BBBxHxx")
LIMIT_SPENT_RESERVED = struct.Struct("<qqq")  # at 8
SPENT_RESERVED = struct.Struct("<qq")  # at 16
NAME_AT = COUNTER.size
MAX_NAME = COUNTER_SIZE - NAME_AT

#: Hold slot: state (0 free, 1 held), line count, id length, owner pid, expiry; the id; the lines.
HOLD = struct.Struct("<BBBxId")
MAX_ID = 64
LINE = struct.Struct("<IBxxxq")  # counter slot, unit, amount
LINES_AT = HOLD.size + MAX_ID
HOLD_SIZE = LINES_AT + MAX_LINES * LINE.size
#: A whole hold record of ``n`` lines, packed at once.
HOLD_RECORDS = [struct.Struct(f"<BBBxId{MAX_ID}s" + "IBxxxq" * n) for n in range(MAX_LINES + 1)]

UNITS = ("usd", "tokens", "requests")
UNIT_CODE = {unit: code for code, unit in enumerate(UNITS)}


def file_size(counter_slots: int, hold_slots: int) -> int:
    return COUNTERS_AT + COUNTER_SIZE * counter_slots + HOLD_SIZE * hold_slots


def counter_key(counter: str) -> bytes:
    """A counter's name as stored: UTF-8, or a digest when longer than a slot holds."""
    raw = counter.encode()
    if len(raw) <= MAX_NAME:
        return raw
    return b"sha256:" + hashlib.sha256(raw).hexdigest().encode()

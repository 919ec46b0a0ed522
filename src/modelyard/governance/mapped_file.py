"""The budget counter file as one process sees it (``store_mapped.py`` is the store on top): open and
mapped, laid out when new, an ``flock`` around each use, and the redo journal that makes each operation
all or nothing.

An operation collects its writes, copies them into the journal, marks the journal pending with one
aligned 4-byte store, applies them, and clears the mark. A process killed in between leaves the mark set,
and whoever takes the lock next applies the journal again (the writes are absolute values, so applying
them twice is applying them once). The kernel drops a dead process's ``flock``.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile
import threading
import weakref

from modelyard.governance import mapped_layout as L


class StoreFull(RuntimeError):
    """The counter or hold table has no free slot, or one operation writes more than the journal holds."""


class MappedFile:
    """The counter file of one process: mapped, locked, and written one journalled operation at a time."""

    def __init__(self, file: str | None, counter_slots: int, hold_slots: int) -> None:
        """Map ``file`` (None: an unnamed one, private to this process), laid out anew if it is new."""
        self._file = file
        if file is None:
            with tempfile.TemporaryFile() as unnamed:
                self._fd = os.dup(unnamed.fileno())
        else:
            self._fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o666)
        self._thread_lock = threading.Lock()
        self._names: dict[str, int] = {}  # counter → slot, valid while the generation is unchanged
        self._slot_names: dict[int, str] = {}
        self._generation = -1
        self._writes: list[tuple[int, bytes]] = []  # the operation in progress
        self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._mm = self._map(counter_slots, hold_slots)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        this = weakref.ref(self)

        def reopen_in_child() -> None:
            store = this()
            if store is not None:
                store._after_fork()

        os.register_at_fork(after_in_child=reopen_in_child)

    def _map(self, counter_slots: int, hold_slots: int) -> mmap.mmap:
        """Map the file, laid out (and filled by :meth:`_fill_new`) when it is new."""
        if os.fstat(self._fd).st_size >= L.HEADER.size:
            magic, counters, holds = L.HEADER.unpack(os.pread(self._fd, L.HEADER.size, 0))
            if magic == L.MAGIC:
                self._layout(counters, holds)
                return mmap.mmap(self._fd, L.file_size(counters, holds))
            if magic != bytes(8):
                raise ValueError(
                    f"{self._file} is not a modelyard budget counter file (or one of an older layout):"
                    " move it away, or point governance.store.path at another file"
                )
        # New, or its creator died before writing the magic: start again from zeros.
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, L.file_size(counter_slots, hold_slots))
        self._mm = mm = mmap.mmap(self._fd, L.file_size(counter_slots, hold_slots))
        L.HEADER.pack_into(mm, 0, bytes(8), counter_slots, hold_slots)
        self._layout(counter_slots, hold_slots)
        self._fill_new()
        mm[0:8] = L.MAGIC  # last: a file without it is laid out again
        return mm

    def _layout(self, counter_slots: int, hold_slots: int) -> None:
        self._counter_slots, self._hold_slots = counter_slots, hold_slots
        self._holds_at = L.COUNTERS_AT + L.COUNTER_SIZE * counter_slots

    def _fill_new(self) -> None:
        """What a new file starts with, written with :meth:`_flush` (nothing here)."""

    def _after_fork(self) -> None:
        """A forked child shares the parent's open file, and with it the ``flock``: open its own."""
        fd = os.open(self._file, os.O_RDWR) if self._file is not None else os.dup(self._fd)
        self._fd, self._thread_lock, self._pid = fd, threading.Lock(), os.getpid()

    def close(self) -> None:
        with self._thread_lock:
            self._mm.close()
            os.close(self._fd)

    # The lock, and the redo journal that makes each operation all or nothing.

    def _acquire(self) -> None:
        self._thread_lock.acquire()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        generation, pending = L.GENERATION_JOURNAL.unpack_from(self._mm, L.GENERATION_AT)
        if pending:
            self._redo()  # the last holder of the lock died while applying an operation
        if generation != self._generation:
            self._names.clear()
            self._slot_names.clear()
            self._generation = generation

    def _release(self) -> None:
        self._writes.clear()  # an operation cut short by an exception wrote nothing
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def _flush(self) -> None:
        """Apply the operation's writes: journalled first, so that a kill midway is finished by the next."""
        mm, writes = self._mm, self._writes
        log = b"".join([L.ENTRY.pack(offset, len(data)) + data for offset, data in writes])
        if L.JOURNAL + len(log) > L.JOURNAL_END:
            raise StoreFull("one budget operation writes more than the counter file's journal holds")
        mm[L.JOURNAL : L.JOURNAL + len(log)] = log
        L.U32.pack_into(mm, L.JOURNAL_LEN_AT, len(log))  # one aligned store: the journal is pending
        for offset, data in writes:
            mm[offset : offset + len(data)] = data
        L.U32.pack_into(mm, L.JOURNAL_LEN_AT, 0)
        writes.clear()

    def _redo(self) -> None:
        mm = self._mm
        at = L.JOURNAL
        end = at + L.U32.unpack_from(mm, L.JOURNAL_LEN_AT)[0]
        while at < end:
            offset, n = L.ENTRY.unpack_from(mm, at)
            mm[offset : offset + n] = mm[at + 8 : at + 8 + n]
            at += 8 + n
        L.U32.pack_into(mm, L.JOURNAL_LEN_AT, 0)

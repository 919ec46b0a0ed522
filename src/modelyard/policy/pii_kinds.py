"""What the PII detectors share: the kinds, the span they report, and two small helpers."""

from __future__ import annotations

from collections.abc import Callable

Span = tuple[int, int, str]
"""(start, end, kind) of one finding; offsets index the str that was scanned."""
Check = Callable[[str, int, str], bool]
"""A validator: (whole text, candidate start, candidate) → is the candidate really one."""

EMAIL, PHONE, CARD, IBAN, SSN, IP, SECRET = "EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"
ALL_KINDS = frozenset({EMAIL, PHONE, CARD, IBAN, SSN, IP, SECRET})


def byte_map(classes: dict[bytes, bytes]) -> bytes:
    """A bytes.translate table: each byte in a key → that key's class byte, every other byte → b" "."""
    table = bytearray(b" " * 256)
    for members, cls in classes.items():
        for b in members:
            table[b] = cls[0]
    return bytes(table)


def before(text: str, start: int, width: int = 24) -> str:
    """The `width` characters before `start`, lower-cased: where context words are looked for."""
    return text[max(0, start - width) : start].lower()


def longest_valid(text: str, start: int, end: int, ok: Check) -> int:
    """The candidate's end, or that of the candidate less a trailing group a loose pattern swallowed
    (`020 7946 0958 2024`, a card number followed by its expiry year); 0 when neither validates."""
    candidate = text[start:end]
    if ok(text, start, candidate):
        return end
    shorter = candidate[: max(candidate.rfind(" "), candidate.rfind("-"), 0)].rstrip(" -")
    if shorter and ok(text, start, shorter):
        return start + len(shorter)
    return 0

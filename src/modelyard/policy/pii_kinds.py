"""What the PII detectors share: the kinds, the span they report, and two small helpers."""

from __future__ import annotations

import re
from collections.abc import Callable

Span = tuple[int, int, str]
"""(start, end, kind) of one finding; offsets index the str that was scanned."""
Check = Callable[[str, int, str], bool]
"""A validator: (whole text, candidate start, candidate) → is the candidate really one."""

EMAIL, PHONE, CARD, IBAN, SSN, IP, SECRET = "EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"
ALL_KINDS = frozenset({EMAIL, PHONE, CARD, IBAN, SSN, IP, SECRET})


# Scripts written without spaces between words: CJK ideographs, kana, hangul, CJK punctuation and
# full-width forms. Python's \w counts their letters as word characters, so a boundary written with \w
# would glue a number to the Japanese word before it (カード番号は4269…) and let a match run on into the
# words after it. Patterns use WORD instead: a word character of a script that separates words by spaces.
NO_SPACE_SCRIPTS = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
WORD = rf"[^\W{NO_SPACE_SCRIPTS}]"
_WORD = re.compile(WORD)


def is_word_char(ch: str) -> bool:
    """Whether `ch` glues to a candidate next to it: a letter, digit or "_" of a spaced script."""
    return _WORD.match(ch) is not None


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
    # Only a group after a space is dropped: one after a dash is part of a dash-joined identifier
    # (`254-8399594-3992104`), and no number found inside such a run is the number it seems to be.
    shorter = candidate[: max(candidate.rfind(" "), 0)].rstrip(" -")
    if shorter and ok(text, start, shorter):
        return start + len(shorter)
    return 0

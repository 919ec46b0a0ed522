"""Numbers that identify a person or a machine: phone numbers, payment cards, US SSNs, IPv4 addresses.

All four are looked for only inside numeric runs: 7+ characters of digits and the separators numbers
are written with, found by a byte search on a translated copy of the text. Most runs are one number, so
each run is first tried whole (one anchored match and one validator per kind); only a run that failed
whole and could hold several candidates, or touches a span already found, is scanned inside.

Validators: Luhn for cards, the SSA's rules for SSNs (python-stdnum), libphonenumber's metadata for
phone numbers; each is memoised on the candidate string. The memo keeps the numbers it has seen in
process memory (bounded, LRU), as the request itself already is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache, partial

from stdnum.us import ssn

from modelyard.policy.pii_kinds import (
    CARD,
    IP,
    PHONE,
    SSN,
    WORD,
    Check,
    Span,
    before,
    byte_map,
    is_word_char,
    longest_valid,
)
from modelyard.policy.pii_phones import DEFAULT_PII_REGIONS, phone_ok

NUMERIC_KINDS = frozenset({PHONE, CARD, SSN, IP})

_NUMERIC_MAP = byte_map({b"0123456789": b"0", b" .()+-": b"s"})
_NUMERIC_RUN = re.compile(rb"0[0s]{6,}")
# Candidates end on a digit and are not glued to a word, a longer number or a dotted/dashed identifier.
# "Word" is that of spaced scripts (pii_kinds.WORD): Japanese characters around a number are boundaries.
_TAIL = rf"(?!{WORD}|[.\-]\d)"
_PHONE = re.compile(
    rf"(?<!{WORD})(?<![+.\-/])(?:\+|\()?\d[\d ().\-]{{5,24}}\d(?:(?= ?(?:x|ext)\.? ?\d)|{_TAIL})"
)
_CARD = re.compile(rf"(?<!{WORD})(?<![.\-+])(?:[2-6]|1800)[\d \-]{{10,22}}\d" + _TAIL)
_SSN = re.compile(rf"(?<!{WORD})(?<![.\-])\d{{3}}([ \-]?)\d{{2}}\1\d{{4}}" + _TAIL)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<!{WORD})(?<![.\-])(?:{_OCTET}\.){{3}}{_OCTET}(?!{WORD}|-|\.\d)")

# Key words before a bare nine-digit SSN, in key=value, key: value and JSON forms (`social_security_number=`,
# `"ssn":`, `SS#:`) and in the languages of people who hold one.
_SSN_WORDS = re.compile(
    r"ssn|ss#|ss no|social[ _\-]?sec|soc\.? ?sec|seguro social|sécurité sociale|securite sociale"
    r"|previdenza sociale|sicurezza sociale|sociale zekerheid|sozialversicherung|社会保障"
)
# A four-part version after one of these words is not an address: `driver 31.0.15.3623`, `firmware
# 10.2.4.1`, `SDK 35.0.1.2`, `Treiberversion 27.20.100.9664`, `"firmware": "10.2.4.1"`.
_NOT_IP_WORDS = re.compile(
    r"(?:\b(?:version|ver|v|release|build|oid|chapter|section|figure|table|driver|treiber|pilote"
    r"|controlador|firmware|fw|sdk|bios|kernel|patch|rev|versión|versione|versie|versão)"
    r"|§|バージョン|ドライバ|ファームウェア)"
    # "firmware update to", "Firmware-Update auf", "driver version": the words between name and number.
    r"(?:[\s_\-]*(?:update|upgrade|version|ver|v|rev|auf|to|zu|naar|para|a|à|vers|al|de)\b)*[\s\"':=.]*\Z"
)
_CARD_WORDS = re.compile(
    r"card|karte|carte|tarjeta|carta|kaart|cartão|cartao|pan\b|maestro|visa|mastercard|カード"
)
# Luhn passes one number in ten: article numbers, barcodes and IMEIs after their names are not cards.
_NOT_CARD_WORDS = re.compile(
    r"(?:\b(?:ean|gtin|upc|isbn|sku|imei|barcode|artikel-?nr|art\.-?nr)|商品コード)[\s\"':=#.]*\Z"
)
_SEPARATOR_BYTES = b" .()+-"
# A phone number's extension, taken into its span: `206.269.0743x9150`, `+49 30 1234567 ext. 12`.
_EXTENSION = re.compile(r" ?(?:x|ext\.?|extension|durchwahl|poste) ?\d{1,6}(?!\w)", re.IGNORECASE)


def find_numbers(
    text: str, raw: bytes, kinds: frozenset[str], claimed: list[Span], regions: tuple[str, ...]
) -> Iterator[Span]:
    """Phone numbers, cards, SSNs and IPv4 addresses of `kinds`; national phone numbers of `regions`.
    `raw` is `text` encoded one byte per character; candidates overlapping `claimed` (an IBAN's digits,
    a key's, an email's) are skipped."""
    for start, end, kind in _find_numbers(text, raw, kinds, claimed, regions):
        if kind == PHONE:
            extension = _EXTENSION.match(text, end)
            end = extension.end() if extension else end
        yield start, end, kind


def _find_numbers(
    text: str, raw: bytes, kinds: frozenset[str], claimed: list[Span], regions: tuple[str, ...]
) -> Iterator[Span]:
    skeleton = raw.translate(_NUMERIC_MAP)
    all_checks = _checks_for(regions, kinds)
    for run in _NUMERIC_RUN.finditer(skeleton):
        start, end = run.span()
        digits, dots = skeleton.count(b"0", start, end), text.count(".", start, end)
        checks = [
            check
            for check in all_checks
            if digits >= check[3]
            and dots >= check[4]
            and (not check[5] or any(skeleton.find(shape, start, end) != -1 for shape in check[5]))
        ]
        if not checks:
            continue
        lo, hi = max(0, start - 2), min(len(text), end + 2)
        taken = [span for span in claimed if span[0] < hi and lo < span[1]]
        whole = None if taken else _whole_run(text, start, end, checks)
        if whole:
            yield whole
        elif taken or _may_hold_several(text[start:end].strip()):
            yield from _inside_run(text, lo, hi, checks, taken)


def _whole_run(text: str, start: int, end: int, checks: list[_NumberCheck]) -> Span | None:
    """The run as one number, if it is free-standing and a kind's pattern and validator accept it."""
    while text[end - 1] in " .-()+":  # no kind ends on a separator: a phone number ends on a digit too
        end -= 1
    glued = end < len(text) and is_word_char(text[end])
    for kind, pattern, ok, *_ in checks:
        if glued and not (kind == PHONE and _EXTENSION.match(text, end)):
            continue
        # A phone number may open with "+" or "("; the patterns' look-behinds check what precedes.
        first = start - 1 if kind == PHONE and start and text[start - 1] in "+(" else start
        if pattern.fullmatch(text, first, end):
            found = longest_valid(text, first, end, ok)
            if found:
                return first, found, kind
    return None


def _may_hold_several(run: str) -> bool:
    """Whether a candidate could start inside the run: only after a space or a parenthesis, since the
    patterns' look-behinds forbid starting after a digit, "." , "-" or "+"."""
    return " " in run or "(" in run or ")" in run


def _inside_run(text: str, lo: int, hi: int, checks: list[_NumberCheck], taken: list[Span]) -> Iterator[Span]:
    """Candidates anywhere in text[lo:hi], most specific kind first, skipping what is already taken."""
    taken = list(taken)
    for kind, pattern, ok, *_ in checks:
        for m in pattern.finditer(text, lo, hi):
            start = m.start()
            if taken and any(start < e and s < m.end() for s, e, _ in taken):
                continue  # already a card, an SSN, part of an IBAN…: not worth a phone lookup
            end = longest_valid(text, start, m.end(), ok)
            if end:
                taken.append((start, end, kind))
                yield start, end, kind


def _digits(candidate: str) -> str:
    return candidate.encode().translate(None, _SEPARATOR_BYTES).decode()


def _card_ok(text: str, start: int, candidate: str) -> bool:
    digits = _digits(candidate)
    if not 12 <= len(digits) <= 19:
        return False
    context = before(text, start, 24)
    if len(digits) == 12 and not (digits[0] in "56" and _CARD_WORDS.search(context)):
        return False  # twelve digits are a card (Maestro) only when the text says so
    if _NOT_CARD_WORDS.search(context):
        return False
    separators = {ch for ch in candidate if not ch.isdigit()}
    if len(separators) > 1:
        return False
    # Printed card numbers are grouped 4-4-4-4(-3), 4-6-5 or 4-6-4: no group shorter than 3 or longer than 6.
    if separators and any(not 3 <= len(g) <= 6 for g in candidate.split(separators.pop())):
        return False
    return _valid_luhn(digits)


def _ssn_ok(text: str, start: int, candidate: str) -> bool:
    if candidate.isdigit() and not _SSN_WORDS.search(before(text, start, 32)):
        return False  # nine bare digits are an SSN only when the text says so
    return _valid_ssn(_digits(candidate))


def _ipv4_ok(text: str, start: int, candidate: str) -> bool:
    if candidate.startswith(("0.", "255.")):
        return False  # "this network", broadcast and netmasks: not a host's address
    return not _NOT_IP_WORDS.search(before(text, start, 24))


@lru_cache(maxsize=64)
def _checks_for(regions: tuple[str, ...], kinds: frozenset[str]) -> tuple[_NumberCheck, ...]:
    """_NUMBER_CHECKS of `kinds`, the phone validator bound to `regions`."""
    phone = partial(phone_ok, regions=regions)
    return tuple(
        (kind, pattern, phone if kind == PHONE else ok, digits, dots, shapes)
        for kind, pattern, ok, digits, dots, shapes in _NUMBER_CHECKS
        if kind in kinds
    )


@lru_cache(maxsize=4096)
def _valid_luhn(digits: str) -> bool:
    """The Luhn checksum (ISO/IEC 7812), written out: python-stdnum's costs ~10x more, and a test keeps
    the two in step."""
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = ord(ch) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@lru_cache(maxsize=4096)
def _valid_ssn(digits: str) -> bool:
    return bool(ssn.is_valid(digits))


# (kind, pattern, validator, digits and dots a run needs, skeleton shapes it needs one of), most specific
# first: a phone lookup is skipped where a card, SSN or IPv4 address was already found.
_NumberCheck = tuple[str, re.Pattern[str], Check, int, int, tuple[bytes, ...]]
_NUMBER_CHECKS: tuple[_NumberCheck, ...] = (
    (IP, _IPV4, _ipv4_ok, 4, 3, ()),
    (CARD, _CARD, _card_ok, 12, 0, ()),
    (SSN, _SSN, _ssn_ok, 9, 0, (b"000s00s0000", b"000000000")),
    # Bound to the data class's regions by _checks_for.
    (PHONE, _PHONE, partial(phone_ok, regions=DEFAULT_PII_REGIONS), 7, 0, ()),
)

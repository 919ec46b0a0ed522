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
from functools import lru_cache

import phonenumbers
from stdnum import luhn
from stdnum.us import ssn

from modelyard.policy.pii_kinds import CARD, IP, PHONE, SSN, Check, Span, before, byte_map, longest_valid

NUMERIC_KINDS = frozenset({PHONE, CARD, SSN, IP})

_NUMERIC_MAP = byte_map({b"0123456789": b"0", b" .()+-": b"s"})
_NUMERIC_RUN = re.compile(rb"0[0s]{6,}")
# Candidates end on a digit and are not glued to a word, a longer number or a dotted/dashed identifier.
_TAIL = r"(?![\w]|[.\-]\d)"
_PHONE = re.compile(r"(?<![\w+.\-/])(?:\+|\()?\d[\d ().\-]{5,24}\d" + _TAIL)
_CARD = re.compile(r"(?<![\w.\-+])[2-6][\d \-]{11,22}\d" + _TAIL)
_SSN = re.compile(r"(?<![\w.\-])\d{3}([ \-]?)\d{2}\1\d{4}" + _TAIL)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.\-])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w\-]|\.\d)")

_NOT_A_PHONE = re.compile(
    r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{4}"  # a date
    r"|\A\d{3}-\d{2}-\d{4}\Z"  # SSN-shaped: no country writes phone numbers 3-2-4 with dashes
    r"|(?:\b\d\b\D+){3}"  # "1 2 3 4 5…": three one-digit groups are counting, not a number plan
)
_PHONE_WORDS = re.compile(r"phone|tel\b|call|mobile|cell|fax|whatsapp|sms|text me|dial|reach me|contact")
_NOT_PHONE_WORDS = re.compile(
    r"order|invoice|ref\b|reference|ticket|account|acct|\bid\b|#|\bno\.|sku|tracking|serial|isbn|"
    r"\bpo\b|case|build|version|batch|lot\b|zip|postcode"
)
_SSN_WORDS = re.compile(r"ssn|social security|soc\.? ?sec")
_NOT_IP_WORDS = re.compile(r"version|\bver\.?|\bv$|release|build|\boid\b|chapter|section|figure|table|§")
# Regions tried for numbers written without a country code. A leading 0 is the trunk prefix of most of
# Europe, the UK and Australia; anything else is tried as North American (NANP covers US and Canada).
_TRUNK_ZERO_REGIONS = ("GB", "DE", "FR", "NL", "IT", "AU")
_NANP_REGIONS = ("US",)
_SEPARATOR_BYTES = b" .()+-"


def find_numbers(text: str, raw: bytes, kinds: frozenset[str], claimed: list[Span]) -> Iterator[Span]:
    """Phone numbers, cards, SSNs and IPv4 addresses of `kinds`. `raw` is `text` encoded one byte per
    character; candidates overlapping `claimed` (an IBAN's digits, a key's, an email's) are skipped."""
    skeleton = raw.translate(_NUMERIC_MAP)
    for run in _NUMERIC_RUN.finditer(skeleton):
        start, end = run.span()
        digits, dots = skeleton.count(b"0", start, end), text.count(".", start, end)
        checks = [
            check
            for check in _NUMBER_CHECKS
            if check[0] in kinds
            and digits >= check[3]
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
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        return None
    for kind, pattern, ok, *_ in checks:
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
    if not 13 <= len(digits) <= 19:
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
    return not _NOT_IP_WORDS.search(before(text, start, 12).rstrip())


def _phone_ok(text: str, start: int, candidate: str) -> bool:
    digits = _digits(candidate)
    if not 7 <= len(digits) <= 15 or candidate.count("(") != candidate.count(")"):
        return False
    if candidate.startswith("+"):
        return _valid_phone("+" + digits, None)
    if candidate.startswith("00") and " " in candidate:
        return _valid_phone("+" + digits[2:], None)
    if digits[0] == "0":
        if not 9 <= len(digits) <= 13:
            return False
    elif not (len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")):
        return False  # a North American number has ten digits, eleven with its leading 1
    if _NOT_A_PHONE.search(candidate):
        return False
    context = before(text, start)
    # Without a word such as "phone" or "call" before it, a national number must be written like one
    # (grouped), and not follow a word such as "order" or "invoice".
    if not _PHONE_WORDS.search(context) and (
        len(digits) == len(candidate) or _NOT_PHONE_WORDS.search(context)
    ):
        return False
    regions = _TRUNK_ZERO_REGIONS if digits[0] == "0" else _NANP_REGIONS
    return any(_valid_phone(digits, region) for region in regions)


@lru_cache(maxsize=4096)
def _valid_phone(number: str, region: str | None) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, region)))
    except phonenumbers.NumberParseException:
        return False


@lru_cache(maxsize=4096)
def _valid_luhn(digits: str) -> bool:
    return bool(luhn.is_valid(digits))


@lru_cache(maxsize=4096)
def _valid_ssn(digits: str) -> bool:
    return bool(ssn.is_valid(digits))


# (kind, pattern, validator, digits and dots a run needs, skeleton shapes it needs one of), most specific
# first: a phone lookup is skipped where a card, SSN or IPv4 address was already found.
_NumberCheck = tuple[str, re.Pattern[str], Check, int, int, tuple[bytes, ...]]
_NUMBER_CHECKS: tuple[_NumberCheck, ...] = (
    (IP, _IPV4, _ipv4_ok, 4, 3, ()),
    (CARD, _CARD, _card_ok, 13, 0, ()),
    (SSN, _SSN, _ssn_ok, 9, 0, (b"000s00s0000", b"000000000")),
    (PHONE, _PHONE, _phone_ok, 7, 0, ()),
)

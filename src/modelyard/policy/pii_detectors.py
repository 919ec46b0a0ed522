"""The scan behind `modelyard.policy.pii.detect`: emails, IBANs, IPv6 addresses and secrets here, the
numeric kinds (phone, card, SSN, IPv4) in `pii_numbers`, then one non-overlapping list of spans.

A chat request is mostly prose with nothing to find, so detection works in two stages:

1. cheap gates over the whole text: substring tests, and byte searches on a translated copy of the text
   (digits → "0", letters → "A", …), which C loops run through far faster than any regex scan;
2. a precise pattern and a validator, run only inside the few windows the gates yield: mod-97 and the
   registry's format for IBANs (python-stdnum), `ipaddress` for IPv6, vendor prefixes or an entropy
   test for secrets.

`re` runs the small anchored matches (its per-call cost is lower); `regex` runs the one whole-text scan
(IPv6), where its search is many times faster. Chat requests resend the whole conversation every turn,
so the spans found in a long text are remembered under its digest. Offsets index the str given.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import math
import re
from collections import Counter, OrderedDict
from collections.abc import Iterator
from functools import cache, lru_cache

import regex
from stdnum import numdb

from modelyard.policy.pii_kinds import (
    ALL_KINDS,
    CARD,
    EMAIL,
    IBAN,
    IP,
    PHONE,
    SECRET,
    SSN,
    WORD,
    Span,
    before,
    byte_map,
    is_word_char,
    longest_valid,
)
from modelyard.policy.pii_numbers import NUMERIC_KINDS, find_numbers
from modelyard.policy.pii_phones import DEFAULT_PII_REGIONS

__all__ = ["ALL_KINDS", "Span", "scan", "scan_many"]

# When two candidates overlap, the kind listed first wins (a key inside a URL's user part, an SSN that
# would also parse as a phone number); among the same kind, the longer.
_PRIORITY = {SECRET: 0, EMAIL: 1, IBAN: 2, CARD: 3, SSN: 4, IP: 5, PHONE: 6}


# ---------------------------------------------------------------- emails
_LOCAL_PART = re.compile(rf"(?:{WORD}|[.%+'\-]){{1,65}}")  # matched on the reversed text before an "@"
# Labels of letters (any spaced script, for internationalised domains), digits and inner hyphens; a TLD of
# letters. Japanese right after an address ends it (`taro@example.jpまで`), so CJK labels are not taken.
_LABEL_CHAR = rf"(?!_){WORD}"
_DOMAIN = re.compile(
    rf"(?:{_LABEL_CHAR}(?:(?:{WORD}|-){{0,61}}{_LABEL_CHAR})?\.)+(?:(?![\d_]){WORD}){{2,24}}(?!{WORD}|-)"
)


def find_emails(text: str) -> Iterator[Span]:
    """Addresses with a dotted domain and an alphabetic TLD (not `user@localhost`, not `pkg@1.2.3`),
    found from each "@" outwards rather than by scanning the text."""
    at = text.find("@")
    while at != -1:
        domain = _DOMAIN.match(text, at + 1)
        local = _LOCAL_PART.match(text[max(0, at - 65) : at][::-1])
        if domain and local and local.end() <= 64:
            start = at - local.end()
            while start < at and not text[start].isalnum():  # a local part starts with a letter or digit
                start += 1
            if start < at:
                yield start, domain.end(), EMAIL
        at = text.find("@", domain.end() if domain else at + 1)


# ---------------------------------------------------------------- IBAN
# Gate: every IBAN starts with a country code and two check digits, "AA00" once upper-case letters are
# mapped to "A" and digits to "0" — a literal byte search, then one anchored match per hit.
_IBAN_MAP = byte_map({b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz": b"A", b"0123456789": b"0"})
_IBAN = re.compile(rf"[A-Za-z]{{2}}\d{{2}}(?: ?[A-Za-z0-9]{{4}}){{2,7}}(?: ?[A-Za-z0-9]{{1,4}})?(?!{WORD})")


def find_ibans(text: str, raw: bytes) -> Iterator[Span]:
    """IBANs written compact or in groups of four, with a valid mod-97 checksum and national format.
    `raw`: see `scan`."""
    skeleton = raw.translate(_IBAN_MAP)
    start = skeleton.find(b"AA00")
    while start != -1:
        end = _iban_end(text, start)
        if end:
            yield start, end, IBAN
        start = skeleton.find(b"AA00", end or start + 1)


def _iban_end(text: str, start: int) -> int:
    if start and is_word_char(text[start - 1]):
        return 0  # "XDE89…" is not an IBAN that starts at "DE" (but "振込先DE89…" is)
    m = _IBAN.match(text, start)
    return longest_valid(text, start, m.end(), _iban_ok) if m else 0


def _iban_ok(text: str, start: int, candidate: str) -> bool:
    return _valid_iban(candidate.replace(" ", "").upper())


@lru_cache(maxsize=4096)
def _valid_iban(compact: str) -> bool:
    """What python-stdnum's `iban.is_valid(…, check_country=False)` says (a test keeps them in step), at
    a tenth of its cost: ISO 7064 mod 97-10, then the IBAN registry's BBAN structure for the country,
    compiled once per country. The national modules (check_country) also look bank codes up in lists
    that go stale, and reject real accounts of banks they lack."""
    if not (compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum() and compact.isascii()):
        return False
    rearranged = compact[4:] + compact[:4]
    if int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 != 1:
        return False
    structure = _bban_structure(compact[:2])
    return structure is not None and structure.fullmatch(compact[4:]) is not None


@cache
def _bban_structure(country: str) -> re.Pattern[str] | None:
    """The registry's BBAN format for `country` (`8!n10!n`: 8 digits, then 10) as a pattern."""
    fields = numdb.get("iban").info(country)[0][1]  # read once, on the first IBAN of each country
    if "bban" not in fields:
        return None
    classes = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
    return re.compile(
        "".join(f"{classes[kind]}{{{count}}}" for count, kind in re.findall(r"(\d+)!([nac])", fields["bban"]))
    )


# ---------------------------------------------------------------- IPv6
_IPV6 = regex.compile(
    rf"(?<!{WORD})(?<![:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:(?:\d{{1,3}}\.){{3}}\d{{1,3}}|[0-9A-Fa-f]{{1,4}})?"
    rf"(?!{WORD}|:)"
)
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{3,4}")


def find_ipv6(text: str) -> Iterator[Span]:
    """IPv6 addresses `ipaddress` accepts, with a digit and a 3-4 digit group: so not `12:30:45`, not a
    MAC address, not `a[1::2]`, not C++'s `b::a`; loopback `::1` is left alone."""
    if ":" not in text:
        return
    for m in _IPV6.finditer(text):
        candidate = m.group()
        if not any(ch.isdigit() for ch in candidate) or not _HEX_GROUP.search(candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield m.start(), m.end(), IP


# ---------------------------------------------------------------- secrets
# Each alternative either succeeds once its class has enough characters or is bounded, and starts only
# after a non-alphanumeric: so no input makes matching quadratic (a JWT's header is alphanumeric for that).
# Vendors' published token formats (prefix, alphabet, length); checked against their documentation:
# docs/pii.md lists each with its source.
_PREFIXED_SECRET = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-(?:ant-(?:api|admin|oat)\d\d-|proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,}"  # Stripe secret/restricted, webhook
    r"|(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS key ids
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub classic and fine-grained
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposre]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,}"  # Slack bot/user/app tokens
    r"|hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}"  # Slack webhook URLs
    r"|AIza[0-9A-Za-z_\-]{35}|GOCSPX-[0-9A-Za-z_\-]{28}|ya29\.[0-9A-Za-z_\-]{20,}"  # Google key, OAuth
    r"|hf_[A-Za-z0-9]{34,}"  # Hugging Face (34 letters and digits; may have no digit at all)
    r"|eyJ[A-Za-z0-9]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JSON Web Tokens
    r")"
)
_CONTEXT_WORDS = ("key", "token", "secret", "passw", "pwd", "bearer", "credential", "authorization")
_SECRET_CONTEXT = re.compile(
    r"(?:key|token|secret|passw(?:or)?d|pwd|bearer|credentials?|authorization)s?[\"']?\s*"
    r"(?:[:=]|=>|\bis\b)?\s*[\"']?\Z"
)
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")
_PRIVATE_KEY_END = re.compile(r"-----END (?:[A-Z]+ )*PRIVATE KEY-----")
# Identifiers and paths that follow "token ="/"key:" in code are long but are not secrets.
_IDENTIFIER = re.compile(r"[/.~]*[A-Za-z]+\d{0,3}(?:[_.\-/][A-Za-z]+\d{0,3})*\(?")
_MIN_SECRET = 16
_CONTEXT_REACH = 40
# Gate: characters a token is made of → b"x", everything else → b" ".
_TOKEN_MAP = byte_map({b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/~!#$%&*^": b"x"})


def find_secrets(text: str, raw: bytes) -> Iterator[Span]:
    """API keys by their vendor prefix, private key blocks, and random-looking values of 16+ characters
    right after a word such as key, token, secret, password or Bearer. `raw`: see `scan`."""
    if "PRIVATE KEY-----" in text:
        yield from _private_keys(text)
    for start, end in _long_runs(text, raw):
        prefixed = False
        for m in _PREFIXED_SECRET.finditer(text, start, end):
            if _random_enough(m.group()):
                prefixed = True
                yield m.start(), m.end(), SECRET
        if not prefixed and _after_context_word(text, start) and _looks_random(text[start:end]):
            yield start, _padding_end(text, end), SECRET


def _private_keys(text: str) -> Iterator[Span]:
    """PEM private key blocks, BEGIN to END. Found with literal searches, in linear time: a lazy regex
    would rescan to the end of the text from every unmatched BEGIN."""
    begin = _PRIVATE_KEY_BEGIN.search(text)
    while begin:
        end = _PRIVATE_KEY_END.search(text, begin.end())
        if not end:
            return
        if "\x00" not in text[begin.end() : end.start()]:  # never across two texts of a joined scan
            yield begin.start(), end.end(), SECRET
        begin = _PRIVATE_KEY_BEGIN.search(text, end.end())


def _long_runs(text: str, raw: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of 16+ token characters, found with byte searches, not a regex scan."""
    skeleton = raw.translate(_TOKEN_MAP)
    needle = b"x" * _MIN_SECRET
    start = skeleton.find(needle)
    while start != -1:
        end = skeleton.find(b" ", start + _MIN_SECRET)
        end = len(skeleton) if end == -1 else end
        trimmed = len(text[start:end].rstrip(".-/+~!"))  # a sentence's full stop is not part of a key
        yield start, start + trimmed
        start = skeleton.find(needle, end)


def _after_context_word(text: str, start: int) -> bool:
    context = before(text, start, _CONTEXT_REACH)
    return any(word in context for word in _CONTEXT_WORDS) and bool(_SECRET_CONTEXT.search(context))


def _padding_end(text: str, end: int) -> int:
    while end < len(text) and text[end] == "=":  # base64 padding
        end += 1
    return end


_AWS_PREFIXES = frozenset(
    {"AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA"}
)


def _random_enough(token: str) -> bool:
    """A vendor-prefixed token is taken when its body is random: a digit, or both letter cases (a
    Hugging Face token may be letters only), so `sk-this-is-not-a-real-key-example` is not."""
    if token[:4] in _AWS_PREFIXES:
        return True  # a fixed length of upper-case base32 after a fixed prefix: random by construction
    body = token[token.find("_") + 1 :] if token.startswith("hf_") else token
    return any(ch.isdigit() for ch in body) or (
        any(ch.isupper() for ch in body) and any(ch.islower() for ch in body)
    )


def _looks_random(value: str) -> bool:
    if len(value) < _MIN_SECRET or _IDENTIFIER.fullmatch(value):
        return False
    if not any(ch.isdigit() for ch in value) or not any(ch.isalpha() for ch in value):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.0


# ---------------------------------------------------------------- all kinds
def scan(text: str, kinds: frozenset[str], regions: tuple[str, ...] = DEFAULT_PII_REGIONS) -> list[Span]:
    """Every finding of the kinds asked for, non-overlapping, sorted by start; national phone numbers
    of `regions`."""
    if len(text) < _MEMO_MIN_CHARS:  # a short text: no memo to consult, nothing to join
        return _scan_one(text, kinds, regions)
    return scan_many([text], kinds, regions)[0]


def scan_many(
    texts: list[str], kinds: frozenset[str], regions: tuple[str, ...] = DEFAULT_PII_REGIONS
) -> list[list[Span]]:
    """`scan` for each text. Texts seen before (a conversation's earlier turns) come from the memo; the
    others are scanned together, joined, so the gates' fixed cost is paid once per request."""
    keys = [(_digest(text), kinds, regions) if len(text) >= _MEMO_MIN_CHARS else None for text in texts]
    found = [_memo.get(key) if key else None for key in keys]
    unseen = [i for i, spans in enumerate(found) if spans is None]
    if unseen:
        for i, spans in zip(unseen, _scan_joined([texts[i] for i in unseen], kinds, regions), strict=True):
            key = keys[i]
            if key:
                _memo.put(key, spans)
            found[i] = spans
    return [list(spans) if spans else [] for spans in found]


# Joins texts for one scan. Longer than every look-behind window, and made of characters no pattern
# accepts, so no finding and no context word reaches across two texts.
_SEPARATOR = "\n" + "\x00" * 40 + "\n"


def _scan_joined(texts: list[str], kinds: frozenset[str], regions: tuple[str, ...]) -> list[tuple[Span, ...]]:
    if len(texts) == 1:
        return [tuple(_scan_one(texts[0], kinds, regions))]
    joined = _SEPARATOR.join(texts)
    starts: list[int] = []
    at = 0
    for text in texts:
        starts.append(at)
        at += len(text) + len(_SEPARATOR)
    per_text: list[list[Span]] = [[] for _ in texts]
    for start, end, kind in _scan_one(joined, kinds, regions):
        i = bisect.bisect_right(starts, start) - 1
        if end - starts[i] <= len(texts[i]):  # by construction always; never let a span straddle two texts
            per_text[i].append((start - starts[i], end - starts[i], kind))
    return [tuple(spans) for spans in per_text]


def _scan_one(text: str, kinds: frozenset[str], regions: tuple[str, ...]) -> list[Span]:
    # One byte per character, so byte offsets are str offsets: characters above U+00FF become "?", which
    # no gate treats as part of a number or a token.
    raw = text.encode("latin-1", "replace")
    spans: list[Span] = []
    if SECRET in kinds:
        spans.extend(find_secrets(text, raw))
    if EMAIL in kinds:
        spans.extend(find_emails(text))
    if IBAN in kinds:
        spans.extend(find_ibans(text, raw))
    if kinds & NUMERIC_KINDS:
        spans.extend(find_numbers(text, raw, kinds, spans[:], regions))
    if IP in kinds:
        spans.extend(find_ipv6(text))
    return _without_overlaps(spans) if len(spans) > 1 else spans


_MemoKey = tuple[bytes, frozenset[str], tuple[str, ...]]
"""(digest of the text, kinds, phone regions): what a text's findings depend on."""


class _SpanMemo:
    """Findings' offsets per (text, kinds), keyed by a 128-bit BLAKE2 digest of the text, so the memo
    holds no text. Bounded, least recently used out first. Each step is one dict operation, atomic under
    the GIL, so threads sharing it at worst miss an entry another thread just moved."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._spans: OrderedDict[_MemoKey, tuple[Span, ...]] = OrderedDict()

    def get(self, key: _MemoKey) -> tuple[Span, ...] | None:
        spans = self._spans.pop(key, None)
        if spans is not None:
            self._spans[key] = spans  # re-inserted: now the most recently used
        return spans

    def put(self, key: _MemoKey, spans: tuple[Span, ...]) -> None:
        self._spans[key] = spans
        if len(self._spans) > self._size:
            self._spans.popitem(last=False)

    def clear(self) -> None:
        self._spans.clear()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_memo = _SpanMemo(size=8192)
# Shorter texts cost less to scan (inside the joined scan) than to hash, look up and remember.
_MEMO_MIN_CHARS = 512


def _without_overlaps(spans: list[Span]) -> list[Span]:
    """Of overlapping spans keep the one of the kind listed first in _PRIORITY (then the longest), so a key
    in `https://ghp_…@github.com` stays a SECRET, not an email; then sort by position."""
    kept_starts: list[int] = []
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (_PRIORITY[s[2]], s[0] - s[1], s[0])):
        at = bisect.bisect_left(kept_starts, span[0])
        clashes_before = at > 0 and kept[at - 1][1] > span[0]
        clashes_after = at < len(kept) and kept[at][0] < span[1]
        if not (clashes_before or clashes_after):
            kept_starts.insert(at, span[0])
            kept.insert(at, span)
    return kept

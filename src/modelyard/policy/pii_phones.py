"""Is this candidate a phone number? Decided from how it is written, the words before it, and
libphonenumber's metadata for the regions the data class declares (`pii_regions`).

A number written with its country code (`+34 …`, `0049 …`) is checked against that country alone. A
national number (`875 05 38 97`, `(89) 4367-6521`, `090-3915-0008`) is tried in each declared region
whose numbering plan it fits, so one region's valid number is not refused for another's rules. A number
starting with its trunk 0 is national only where the plan has one (Brazil's, a carrier code, is left out).

Two verdicts count: *valid* (what libphonenumber's `is_valid_number` says: an assigned range of the plan)
and *possible* (the plan's lengths and general pattern, not a known range: fictional numbers, ranges the
metadata does not know yet). They are computed from libphonenumber's metadata patterns, compiled once per
region, not with its `parse` (~100 µs a number here); a test keeps the two in agreement. A possible number is taken only when a word such as phone/Telefon/電話 comes
before it or it is written the way phone numbers are (`+CC …`, `(0161) …`, `415-555-2671`); a valid one
also when grouped without such a word. A word such as order/Bestellung/注文 after the last phone word
rules a national number out.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneMetadata

from modelyard.config.routing import DEFAULT_PII_REGIONS
from modelyard.policy.pii_kinds import before

__all__ = ["DEFAULT_PII_REGIONS", "checked_regions", "phone_ok"]

_VALID, _POSSIBLE, _NOT = 2, 1, 0

# Latin-script words match at a word start (so "Kundennummer" holds no "nummer"); CJK words anywhere.
_START = r"(?<![a-zà-ÿ])"
_PHONE_WORDS = re.compile(
    _START + r"(?:phone|tel\b|tel\.|telephone|call|mobile|cell|fax|whatsapp|sms|text me|dial|reach me|ring"
    r"|contact|telefon|handy|mobil|rufnummer|anruf|rufen|ruf\b|rückruf|erreichbar|durchwahl|téléphone|tél|portable|appel"
    r"|joindre|joignable|teléfono|telf|móvil|llam|llám|contacto|celular|telefono|cellulare|chiam|contatt"
    r"|recapito|telefoon|mobiel|bel\b|bellen|gsm|telefone|ligue|ligar|contato|zap\b)"
    r"|電話|携帯|連絡先|ファックス"
)
# "number" alone: a phone's when nothing else is said, an order's after "order" (handled below).
_NUMBER_WORDS = re.compile(_START + r"(?:number|numéro|numero|número|nummer|n°|nr\b|no\b)|番号")
_NOT_PHONE_WORDS = re.compile(
    _START + r"(?:order|invoice|ref\b|reference|ticket|account|acct|id\b|sku|tracking|serial|isbn|po\b"
    r"|case|build|version|batch|lot\b|zip|postcode|bestell|rechnung|auftrag|kunden|konto|vorgang|sendung"
    r"|artikel|plz|steuer|commande|facture|dossier|compte|client|suivi|colis|siret|siren|pedido|factura"
    r"|cuenta|expediente|seguimiento|albarán|ordine|fattura|pratica|conto\b|spedizione|codice|bestelling"
    r"|factuur|klant|rekening|zending|fatura|nota\b|conta\b|rastreio|protocolo|cpf|cnpj)"
    r"|#|\bno\.|注文|請求|伝票|顧客|会員|口座|追跡|郵便"
)
# How phone numbers are written: with a country code, an area code in parentheses, North American
# 3-3-4 groups, or a trunk 0 and groups (`030 1234567`, `090-3915-0008`, `0161 496 0066`).
_PHONE_SHAPE = re.compile(
    r"\+.*|00\d.*\s.*|\(\+?\d{1,5}\).*|\d{3}([\-. ])\d{3}\1\d{4}|0\d{1,4}[ \-/]\d{2,8}(?:[ \-]\d{2,4}){0,3}"
    r"|\d{2} \d{4,5}-\d{4}"
)
_NOT_A_PHONE = re.compile(
    r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{4}"  # a date
    r"|\A\d{3}-\d{2}-\d{4}\Z"  # SSN-shaped: no country writes phone numbers 3-2-4 with dashes
    r"|(?:\b\d\b\D+){3}"  # "1 2 3 4 5…": three one-digit groups are counting, not a number plan
)
_SEPARATORS = b" .()+-/"
_CONTEXT_REACH = 28  # characters before a number where its phone or order word is looked for
# Plans with a trunk prefix 0 that people leave out when writing a number: Brazil's 0 selects a carrier,
# numbers are written `(11) 91234-5678`.
_TRUNK_ZERO_OMITTED = frozenset({"BR"})


def checked_regions(regions: tuple[str, ...] | None) -> tuple[str, ...]:
    """`regions` (default: DEFAULT_PII_REGIONS), each a region libphonenumber knows, or a ValueError."""
    if regions is None:
        return DEFAULT_PII_REGIONS
    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(
            f"unknown phone region(s) {', '.join(unknown)}: use ISO 3166 alpha-2 codes such as "
            f"{', '.join(DEFAULT_PII_REGIONS)}"
        )
    return tuple(regions)


def phone_ok(text: str, start: int, candidate: str, regions: tuple[str, ...]) -> bool:
    """Whether `candidate`, found at `start` in `text`, is a phone number of one of `regions` (or, with
    its country code, of any country)."""
    digits = candidate.encode().translate(None, _SEPARATORS).decode()
    if not 7 <= len(digits) <= 15 or candidate.count("(") != candidate.count(")"):
        return False
    # The verdict first (memoised, and most candidates fail it), the words before the number only then.
    if candidate.startswith("+") or (candidate.startswith("00") and not candidate.isdigit()):
        verdict = _international_verdict(digits[2:] if candidate[0] == "0" else digits)
        return verdict == _VALID or (
            verdict == _POSSIBLE and _context(before(text, start, _CONTEXT_REACH)) != "not"
        )
    if _NOT_A_PHONE.search(candidate):
        return False
    verdict = _national_verdict(digits, regions)
    if verdict == _NOT:
        return False
    context = _context(before(text, start, _CONTEXT_REACH))
    if context == "not" or (context is None and len(digits) == len(candidate)):
        return False  # after an order word; bare digits are a phone number only when the text says so
    # Not an assigned range: a phone number only if the text or the way it is written says so.
    return verdict == _VALID or context == "phone" or _PHONE_SHAPE.fullmatch(candidate) is not None


def _context(window: str) -> str | None:
    """``phone`` when a phone word comes last, ``not`` when an order/invoice/… word does, ``number``
    when only a bare "number" is there, None when nothing is."""
    phone = max((m.end() for m in _PHONE_WORDS.finditer(window)), default=-1)
    not_phone = max((m.end() for m in _NOT_PHONE_WORDS.finditer(window)), default=-1)
    if not_phone > phone:
        return "not"
    if phone >= 0:
        return "phone"
    return "number" if _NUMBER_WORDS.search(window) else None


@lru_cache(maxsize=4096)
def _national_verdict(digits: str, regions: tuple[str, ...]) -> int:
    """The best verdict for `digits`, written as a national number, in any of `regions`."""
    best = _NOT
    for region in regions:
        plan = _plan(region)
        if plan.prefix == "0" and region not in _TRUNK_ZERO_OMITTED and not digits.startswith("0"):
            continue  # `8 336 817` is no German number: Germans write theirs with the trunk 0
        national = digits[len(plan.prefix) :] if plan.prefix and digits.startswith(plan.prefix) else digits
        if plan.fits(national):
            if _assigned(national, plan.country_code):
                return _VALID
            best = _POSSIBLE
    return best


@lru_cache(maxsize=4096)
def _international_verdict(digits: str) -> int:
    """The verdict for `digits` written after "+" or "00": a country code, then the national number
    (a trunk 0 written as `+44 (0)20…` is dropped, as when dialling)."""
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if not regions:
            continue
        national = digits[size:]
        plans = [_plan(r) for r in regions]
        if national.startswith("0") and any(p.prefix == "0" for p in plans):
            national = national[1:]
        if _assigned(national, int(digits[:size])):
            return _VALID
        return _POSSIBLE if any(p.fits(national) for p in plans) else _NOT
    return _NOT


def _assigned(national: str, country_code: int) -> bool:
    """libphonenumber's `is_valid_number` without its parse: the national number matches a number type
    (fixed line, mobile, toll free…) of a region with this country code (for +1: the US, Canada…)."""
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        if any(
            len(national) in lengths and pattern.fullmatch(national)
            for lengths, pattern in _plan(region).types
        ):
            return True
    return False


class _Plan(NamedTuple):
    """What the checks need of a region's numbering plan, compiled once."""

    country_code: int
    prefix: str
    lengths: frozenset[int]
    general: re.Pattern[str]
    #: (possible lengths, pattern) of each number type the plan assigns.
    types: tuple[tuple[frozenset[int], re.Pattern[str]], ...]

    def fits(self, national: str) -> bool:
        return len(national) in self.lengths and self.general.fullmatch(national) is not None


_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


@cache
def _plan(region: str) -> _Plan:
    metadata = PhoneMetadata.metadata_for_region(region)  # None for "001", the non-geographic codes
    if metadata is None or metadata.general_desc is None:
        return _Plan(0, "", frozenset(), re.compile(r"(?!)"), ())
    general = metadata.general_desc
    lengths = frozenset(general.possible_length or ())
    types = []
    for name in _TYPES:
        desc = getattr(metadata, name, None)
        if desc is not None and desc.national_number_pattern:
            own = frozenset(n for n in (desc.possible_length or ()) if n > 0)
            types.append((own or lengths, re.compile(desc.national_number_pattern)))
    return _Plan(
        metadata.country_code or 0,
        metadata.national_prefix or "",
        lengths,
        re.compile(general.national_number_pattern or r"(?!)"),
        tuple(types),
    )

"""Is this candidate a phone number? Decided from how it is written, the words before it, and
libphonenumber's metadata for the regions the data class declares (`pii_regions`).

A number written with its country code (`+34 …`, `0049 …`) is checked against that country alone. A
national number (`875 05 38 97`, `(89) 4367-6521`, `090-3915-0008`) is tried in each declared region
whose numbering plan it fits, so one region's valid number is not refused for another's rules. Only the
regions whose general pattern matches are parsed: a parse costs ~70 µs, the pattern ~1 µs.

Two verdicts count: *valid* (libphonenumber's `is_valid_number`: an assigned range of the plan) and
*possible* (the plan's lengths and general pattern, not a known range: fictional numbers, ranges the
metadata does not know yet). A possible number is taken only when a word such as phone/Telefon/電話 comes
before it or it is written the way phone numbers are (`+CC …`, `(0161) …`, `415-555-2671`); a valid one
also when grouped without such a word. A word such as order/Bestellung/注文 after the last phone word
rules a national number out.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

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
    context = _context(before(text, start, 28))
    if candidate.startswith("+") or (candidate.startswith("00") and not candidate.isdigit()):
        verdict = _verdict(candidate if candidate[0] == "+" else "+" + candidate[2:], None)
        return verdict == _VALID or (verdict == _POSSIBLE and context != "not")
    if context == "not" or _NOT_A_PHONE.search(candidate):
        return False
    if context is None and len(digits) == len(candidate):
        return False  # bare digits are a phone number only when the text says so
    verdict = max((_verdict(candidate, r) for r in _plans_that_fit(digits, regions)), default=_NOT)
    if verdict == _VALID:
        return True
    # Not an assigned range: a phone number only if the text or the way it is written says so.
    return verdict == _POSSIBLE and (context == "phone" or _PHONE_SHAPE.fullmatch(candidate) is not None)


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


def _plans_that_fit(digits: str, regions: tuple[str, ...]) -> list[str]:
    """The regions whose numbering plan has room for `digits` written nationally: the length and the
    general pattern once the trunk prefix is taken off. Cheap, so the parse runs only where it may pass."""
    fitting = []
    for region in regions:
        prefix, lengths, pattern = _plan(region)
        if prefix == "0" and region not in _TRUNK_ZERO_OMITTED and not digits.startswith("0"):
            continue  # `8 336 817` is no German number: Germans write theirs with the trunk 0
        national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
        if len(national) in lengths and pattern.fullmatch(national):
            fitting.append(region)
    return fitting


@cache
def _plan(region: str) -> tuple[str, frozenset[int], re.Pattern[str]]:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return "", frozenset(), re.compile(r"(?!)")
    general = metadata.general_desc
    return (
        metadata.national_prefix or "",
        frozenset(general.possible_length or ()),
        re.compile(general.national_number_pattern or r"(?!)"),
    )


@lru_cache(maxsize=4096)
def _verdict(candidate: str, region: str | None) -> int:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return _NOT
    if phonenumbers.is_valid_number(number):
        return _VALID
    if not phonenumbers.is_possible_number(number):
        return _NOT
    # The right length is not enough (`+1 000 000 0000`): the plan's general pattern must match too.
    national = phonenumbers.national_significant_number(number)
    regions = phonenumbers.region_codes_for_country_code(number.country_code or 0)
    return _POSSIBLE if any(_plan(r)[2].fullmatch(national) for r in regions) else _NOT

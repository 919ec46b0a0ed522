"""PII detection beyond English (issue 20): national phone numbers of the declared regions, scripts written
without spaces, the vendors' token formats, key=value forms in several languages, versions that are not
addresses; the Faker held-out set above its floors; `pii_regions` in the config and the gateway."""

from __future__ import annotations

import itertools
import random
import string
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from stdnum import iban, luhn

from modelyard.config import parse_config
from modelyard.config.routing import DEFAULT_PII_REGIONS, DataClassPolicy
from modelyard.errors import ConfigError
from modelyard.gateway.redaction import redact_chat
from modelyard.policy import pii_detectors, pii_numbers, pii_phones
from modelyard.policy.pii import detect, redact
from tests.pii_support import FAKER_HELDOUT, FAKER_TUNE, load_rows, overall, ratio, score, table

REPO = Path(__file__).resolve().parent.parent


def found(text: str, regions: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in detect(text, regions=regions)]


# ---------------------------------------------------------------- phone numbers and regions
NATIONAL_NUMBERS = [
    ("ES", "Mi teléfono es el 875 05 38 97.", "875 05 38 97"),
    ("ES", "llámame al 612345678", "612345678"),
    ("BR", "Me ligue no (89) 4367-6521 amanhã", "(89) 4367-6521"),
    ("BR", "celular 11 91234-5678", "11 91234-5678"),
    ("IT", "cellulare 390 560 9489", "390 560 9489"),
    ("IT", "chiamatemi al 04619840722", "04619840722"),
    ("FR", "mon numéro est le 0493650028", "0493650028"),
    ("DE", "Bitte rufen Sie mich unter 030 1234567 zurück", "030 1234567"),
    ("NL", "bel mij op 020-1234567", "020-1234567"),
    ("JP", "電話番号は090-3915-0008です。", "090-3915-0008"),
    ("GB", "ring 0161 496 0066 after six", "0161 496 0066"),
    ("US", "call me at (415) 555-2671", "(415) 555-2671"),
]


@pytest.mark.parametrize(("region", "text", "number"), NATIONAL_NUMBERS)
def test_a_national_number_is_found_where_its_region_is_declared(region: str, text: str, number: str) -> None:
    assert found(text) == [("PHONE", number)], "the default regions"
    assert found(text, regions=(region,)) == [("PHONE", number)]


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("Mi teléfono es el 875 05 38 97.", ("US", "GB")),
        ("cellulare 390 560 9489", ("DE", "FR")),
        ("Me ligue no (89) 4367-6521 amanhã", ("JP",)),
    ],
)
def test_a_national_number_of_an_undeclared_region_is_not_taken(text: str, regions: tuple[str, ...]) -> None:
    assert found(text, regions=regions) == []


def test_a_number_with_its_country_code_is_found_whatever_the_regions() -> None:
    assert found("WhatsApp +34 612 34 56 78", regions=("JP",)) == [("PHONE", "+34 612 34 56 78")]
    assert found("Tel. 0049 30 1234567", regions=("US",)) == [("PHONE", "0049 30 1234567")]


@pytest.mark.parametrize(
    "text",
    [
        "Bestellung 254-8399594-3992104 ist unterwegs",
        "Order 254-8399594-3992104 shipped",
        "Pedido 402-1234567-7654321 enviado",
        "call about 254-8399594-3992104",
    ],
)
def test_no_phone_number_inside_a_longer_dash_joined_run(text: str) -> None:
    assert [kind for kind, _ in found(text)] == []


@pytest.mark.parametrize(
    "text",
    [
        "numéro de commande 0493650028",
        "Kundennummer 0301234567",
        "número de pedido 612345678",
        "注文番号は090-3915-0008です",
        "Rechnung 030 1234567",
        "Population 8 336 817",
    ],
)
def test_an_order_word_after_the_phone_word_rules_a_number_out(text: str) -> None:
    assert found(text) == []


def test_an_extension_belongs_to_its_number() -> None:
    assert found("call 206.269.0743x9150 today") == [("PHONE", "206.269.0743x9150")]
    assert found("Tel. +49 30 1234567 ext. 12") == [("PHONE", "+49 30 1234567 ext. 12")]


def test_the_compiled_plans_agree_with_libphonenumber_on_random_national_numbers() -> None:
    """The detector checks libphonenumber's metadata patterns itself (its parse costs ~100 µs): on random
    numbers written nationally, it must call valid exactly what `parse` + `is_valid_number` call valid."""
    rng = random.Random(20)
    for region in DEFAULT_PII_REGIONS:
        trunk = region not in ("US", "ES", "IT", "BR")
        for _ in range(150):
            digits = ("0" if trunk else "") + str(rng.randint(10**6, 10**11))
            if digits.startswith(str(phonenumbers.country_code_for_region(region))):
                continue  # parse would read the country code in it: not a number written nationally
            ours = pii_phones._national_verdict(digits, (region,)) == pii_phones._VALID
            theirs = phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
            assert ours == theirs, (region, digits)


def test_the_iban_check_agrees_with_python_stdnum() -> None:
    """The detector checks IBANs itself (mod 97 and the registry's structure, ~10x cheaper than stdnum's
    `is_valid`): on every IBAN of the corpora and one-character changes to them, the two must agree."""
    rng = random.Random(20)
    values = [
        row["text"][e["start"] : e["end"]].replace(" ", "").upper()
        for path in (FAKER_TUNE, FAKER_HELDOUT)
        for row in load_rows(path)
        for e in row["entities"]
        if e["kind"] == "IBAN"
    ]
    assert len(values) > 50
    for value in values:
        assert pii_detectors._valid_iban(value)
        for _ in range(10):
            at = rng.randrange(len(value))
            changed = value[:at] + rng.choice(string.digits + string.ascii_uppercase) + value[at + 1 :]
            assert pii_detectors._valid_iban(changed) == iban.is_valid(changed, check_country=False), changed


def test_the_luhn_check_agrees_with_python_stdnum() -> None:
    rng = random.Random(20)
    for _ in range(3000):
        digits = str(rng.randint(10**11, 10**19))
        assert pii_numbers._valid_luhn(digits) == luhn.is_valid(digits), digits


def test_unknown_regions_are_refused_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="unknown phone region"):
        detect("call 030 1234567", regions=("XX",))
    with pytest.raises(ValueError, match="ISO 3166"):
        redact("call 030 1234567", mode="mask", regions=("de",))


# ---------------------------------------------------------------- scripts without spaces
@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("カード番号は4269 0812 8421 3780です", "CARD", "4269 0812 8421 3780"),
        ("サーバー192.168.10.4に接続できません", "IP", "192.168.10.4"),
        ("振込先はDE89370400440532013000でお願いします", "IBAN", "DE89370400440532013000"),
        ("携帯090-3915-0008までお電話ください", "PHONE", "090-3915-0008"),
        ("メールはtaro.yamada@example.jpまでお願いします", "EMAIL", "taro.yamada@example.jp"),
        ("担当者taro@example.co.jp、よろしく", "EMAIL", "taro@example.co.jp"),
        ("アドレス2001:db8::8a2e:370:7334へ", "IP", "2001:db8::8a2e:370:7334"),
        ("社会保障番号536-90-4399です", "SSN", "536-90-4399"),
    ],
)
def test_entities_next_to_japanese_are_found_and_stop_at_it(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]
    masked, _ = redact(text, mode="mask")
    assert masked == text.replace(value, f"[{kind}]"), "the Japanese around it is kept"


def test_latin_letters_still_glue() -> None:
    assert found("id X4269081284213780 and ABC192.168.10.4") == []


# ---------------------------------------------------------------- secrets: the vendors' formats
SECRETS = {
    "OpenAI project key": "sk-proj-" + "Ab3dEf9hIj2lMn5pQr8tUv1xYz4bCd7fGh0jKl6nOp",
    "OpenAI legacy key": "sk-" + "Ab3dEf9hIj2lMn5pQr8t" + "T3BlbkFJ" + "Uv1xYz4bCd7fGh0jKl6n",
    "OpenAI service account key": "sk-svcacct-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "Anthropic API key": "sk-ant-api03-"
    + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe_-aB3cD4eF5gH6iJ7kL8mN9oP0"
    + "AA",
    "Anthropic admin key": "sk-ant-admin01-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "AWS access key id": "AKIAIOSFODNN7EXAMPLE",
    "AWS access key id, letters only": "AKIABZPHIVKRTFQMLOIQ",
    "AWS temporary key id": "ASIAY34FZKBOKMUTVV7A",
    "GitHub classic token": "ghp_" + "1A2b3C4d5E6f7G8h9I0jK1lM2nO3pQ4rS5tU6v",
    "GitHub fine-grained token": "github_pat_" + "11ABCDEFG0123456789abc_" + "x" * 20 + "Y7z" * 13,
    "Google API key": "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "Google OAuth client secret": "GOCSPX-" + "1a2B3c4D5e6F7g8H9i0J1k2L3m4N",
    "Hugging Face token, letters only": "hf_" + "abcdefghijKLMNOPQRSTuvwxyzABCDEFGH",
    "Hugging Face token": "hf_" + "AbCdEf1234567890GhIjKlMnOpQrStUvWx",
    "Slack bot token": "xoxb-" + "2048123456-4096123456-" + "8192abcdefGHIJKLmnopQRST",
    "Slack app token": "xapp-1-" + "A0123BCDEF-1234567890123-" + "abcdef0123456789",
    "Stripe secret key": "sk_live_" + "51HqLyjWDarjtT1zdp7dc" + "x7Yw",
    "Stripe restricted key": "rk_live_" + "51HqLyjWDarjtT1zdp7dcx7Yw",
    "Stripe webhook secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "JWT": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
}


@pytest.mark.parametrize("vendor", SECRETS)
def test_each_vendors_token_format_is_a_secret(vendor: str) -> None:
    token = SECRETS[vendor]
    assert found(f"the key {token} leaked") == [("SECRET", token)]
    assert found(f'{{"credential":"{token}"}}') == [("SECRET", token)]


def test_slack_webhook_urls_and_aws_secret_keys_after_their_names() -> None:
    url = "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijKLMNOPqrstuvwx"
    assert [kind for kind, _ in found(f"webhook: {url}")] == ["SECRET"]
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(f"aws_secret_access_key = {key}") == [("SECRET", key)]


@pytest.mark.parametrize(
    "text",
    [
        "sk-this-is-not-a-real-key-example-at-all",
        "from huggingface_hub import hf_hub_download",
        "hf_abcdefghijklmnopqrstuvwxyzabcdefgh",  # one letter case and no digit: a name, not a token
        "AKIA alone, AKIA1234 too short",
        "ghp_short",
        "xoxb-",
    ],
)
def test_vendor_prefixes_alone_are_not_secrets(text: str) -> None:
    assert found(text) == []


# ---------------------------------------------------------------- key=value forms and versions
@pytest.mark.parametrize(
    "text",
    [
        "social_security_number=536904399",
        "social_security_number: 536-90-4399",
        '{"ssn": "536904399"}',
        '{"SSN":536904399}',
        "SS#: 536904399",
        "SS#536-90-4399",
        "SSN no. 536 90 4399",
        "número de seguro social 536904399",
        "numéro de sécurité sociale (US) : 536904399",
        "US-Sozialversicherungsnummer 536904399",
    ],
)
def test_ssn_keys_in_several_forms_and_languages(text: str) -> None:
    assert [kind for kind, _ in found(text)] == ["SSN"]


@pytest.mark.parametrize(
    "text",
    [
        "driver 31.0.15.3623",
        "GPU driver version 31.0.15.3623 installed",
        "firmware 10.2.4.1",
        "Firmware-Update auf 10.14.33.26",
        "SDK 35.0.1.2",
        '{"firmware": "10.2.4.1"}',
        "Treiberversion 27.20.100.9664",
        "pilote 27.20.100.9664",
        "ファームウェア10.2.4.1",
    ],
)
def test_versions_after_driver_firmware_sdk_are_not_addresses(text: str) -> None:
    assert found(text) == []


def test_an_address_after_other_words_is_still_one() -> None:
    assert found("the driver crashed on 10.20.30.40") == [("IP", "10.20.30.40")]
    assert found("firmware server: 10.20.30.40") == [("IP", "10.20.30.40")]


# ---------------------------------------------------------------- the Faker corpora
HELDOUT_KIND_FLOOR = 0.95
HELDOUT_OVERALL_FLOOR = 0.97


def test_the_heldout_set_stays_above_its_floors() -> None:
    rows = load_rows(FAKER_HELDOUT)
    counts = score(rows)
    print(f"\nheld-out ({len(rows)} lines)\n{table(counts)}")
    tp, fp, fn = overall(counts)
    assert ratio(tp, fp) >= HELDOUT_OVERALL_FLOOR and ratio(tp, fn) >= HELDOUT_OVERALL_FLOOR, table(counts)
    for kind, (tp, fp, fn) in counts.items():
        assert ratio(tp, fp) >= HELDOUT_KIND_FLOOR, f"{kind} precision\n{table(counts)}"
        assert ratio(tp, fn) >= HELDOUT_KIND_FLOOR, f"{kind} recall\n{table(counts)}"


def test_the_tuning_and_heldout_sets_are_apart_and_cover_every_kind_and_locale() -> None:
    tune, heldout = load_rows(FAKER_TUNE), load_rows(FAKER_HELDOUT)
    assert not {r["text"] for r in tune} & {r["text"] for r in heldout}
    for rows in (tune, heldout):
        assert {r["locale"] for r in rows} == {
            "en_US",
            "en_GB",
            "de_DE",
            "fr_FR",
            "es_ES",
            "it_IT",
            "nl_NL",
            "pt_BR",
            "ja_JP",
        }
        kinds = {e["kind"] for r in rows for e in r["entities"]}
        assert kinds == {"EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET"}
        assert sum(1 for r in rows if not r["entities"]) >= len(rows) // 4, "hard negatives"
        for row in rows:
            spans = sorted((e["start"], e["end"]) for e in row["entities"])
            assert all(0 <= s < e <= len(row["text"]) for s, e in spans)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_the_generator_reproduces_both_files(tmp_path: Path) -> None:
    run = [sys.executable, str(REPO / "bench" / "pii_corpus.py"), "--out", str(tmp_path)]
    subprocess.run(run, check=True, capture_output=True, timeout=120)
    for path in (FAKER_TUNE, FAKER_HELDOUT):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


# ---------------------------------------------------------------- the config and the gateway
BASE = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
    "models": {"m": {"provider": "p"}},
}


def test_pii_regions_default_and_are_validated_at_start_up() -> None:
    config = parse_config({**BASE, "policy": {"data_classes": {"confidential": {"pii": "mask"}}}})
    assert config.policy.data_classes["confidential"].pii_regions == DEFAULT_PII_REGIONS
    config = parse_config(
        {**BASE, "policy": {"data_classes": {"confidential": {"pii": "mask", "pii_regions": ["ES", "PT"]}}}}
    )
    assert config.policy.data_classes["confidential"].pii_regions == ("ES", "PT")
    with pytest.raises(ConfigError, match=r"policy\.data_classes\.confidential\.pii_regions.*unknown region"):
        parse_config({**BASE, "policy": {"data_classes": {"confidential": {"pii_regions": ["ES", "EU"]}}}})
    with pytest.raises(ConfigError, match=r"pii_regions"):
        parse_config({**BASE, "policy": {"data_classes": {"confidential": {"pii_regions": []}}}})


def test_the_gateway_redacts_with_the_data_class_regions() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Mi teléfono es el 875 05 38 97."}]}
    spanish = redact_chat(DataClassPolicy(pii="mask", pii_regions=("ES",)), body)
    assert spanish.body["messages"][0]["content"] == "Mi teléfono es el [PHONE]."
    assert spanish.note == "pii mask: PHONE 1"
    american = redact_chat(DataClassPolicy(pii="mask", pii_regions=("US",)), body)
    assert american.body is body and american.note is None

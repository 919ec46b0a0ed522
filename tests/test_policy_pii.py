"""PII detection and redaction: precision/recall on the labelled corpus, must-find and must-not-find cases
per kind, masking, pseudonymisation and restore (whole and streamed), and chat bodies left unmutated."""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from modelyard.policy import pii_detectors
from modelyard.policy.pii import (
    ALL_KINDS,
    Restorer,
    Vault,
    detect,
    redact,
    redact_chat_body,
    restore,
)
from tests.pii_support import HAND_WRITTEN, load_rows, overall, ratio, score, table

OVERALL_PRECISION, OVERALL_RECALL = 0.95, 0.90
KIND_PRECISION, KIND_RECALL = 0.90, 0.85


def load_corpus() -> list[dict[str, Any]]:
    return load_rows(HAND_WRITTEN)


# ---------------------------------------------------------------- the corpus
def test_corpus_is_well_formed_and_covers_every_kind() -> None:
    rows = load_corpus()
    assert len(rows) >= 150
    kinds = Counter(e["kind"] for row in rows for e in row["entities"])
    assert set(kinds) == ALL_KINDS and min(kinds.values()) >= 10, kinds
    assert sum(1 for row in rows if not row["entities"]) >= 60, "hard negatives"
    for row in rows:
        spans = sorted((e["start"], e["end"]) for e in row["entities"])
        assert all(0 <= s < e <= len(row["text"]) for s, e in spans), row
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), row


def test_precision_and_recall_on_the_labelled_corpus() -> None:
    rows = load_corpus()
    for split in ("dev", "heldout", None):
        chosen = [r for r in rows if split is None or r["split"] == split]
        print(f"\n{split or 'all'}: {len(chosen)} lines\n{table(score(chosen))}")
    counts = score(rows)
    tp, fp, fn = overall(counts)
    assert ratio(tp, fp) >= OVERALL_PRECISION and ratio(tp, fn) >= OVERALL_RECALL, table(counts)
    for kind, (tp, fp, fn) in counts.items():
        assert ratio(tp, fp) >= KIND_PRECISION and ratio(tp, fn) >= KIND_RECALL, f"{kind}\n{table(counts)}"


# ---------------------------------------------------------------- each kind: must find, must not find
MUST_FIND = [
    ("EMAIL", "write to ana.lopez+tag@mail.example.co.uk today", "ana.lopez+tag@mail.example.co.uk"),
    ("EMAIL", '{"email":"USER_1@EXAMPLE.IO"}', "USER_1@EXAMPLE.IO"),
    ("PHONE", "call +1 (415) 555-2671 now", "+1 (415) 555-2671"),
    ("PHONE", "Berlin: +49 30 12345678.", "+49 30 12345678"),
    ("PHONE", "portable +33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("PHONE", "Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
    ("PHONE", "London 020 7946 0958, ask for Sam", "020 7946 0958"),
    ("PHONE", "phone 4155552671", "4155552671"),
    ("CARD", "card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("CARD", "amex 3782-822463-10005", "3782-822463-10005"),
    ("CARD", "pan=5555555555554444;", "5555555555554444"),
    ("IBAN", "to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("IBAN", "iban: fr14 2004 1010 0505 0001 3m02 606", "fr14 2004 1010 0505 0001 3m02 606"),
    ("SSN", "SSN 536-90-4399.", "536-90-4399"),
    ("SSN", "social security number 536904399", "536904399"),
    ("SSN", "the claimant (455-67-8912) lives", "455-67-8912"),
    ("IP", "from 203.0.113.42:443", "203.0.113.42"),
    ("IP", "host (10.0.0.1) is down", "10.0.0.1"),
    ("IP", "host [2001:db8::8a2e:370:7334]:80", "2001:db8::8a2e:370:7334"),
    ("IP", "mapped ::ffff:192.0.2.128 ok", "::ffff:192.0.2.128"),
    ("SECRET", "key sk-proj-9fK2mQ7xLp4Rt8Vb1Nc6Zw3Hy5Jd0Gs.", "sk-proj-9fK2mQ7xLp4Rt8Vb1Nc6Zw3Hy5Jd0Gs"),
    (
        "SECRET",
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    ),
    ("SECRET", "id=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "ghp_1A2b3C4d5E6f7G8h9I0jK1lM2nO3pQ4rS5tU6", "ghp_1A2b3C4d5E6f7G8h9I0jK1lM2nO3pQ4rS5tU6"),
    ("SECRET", "xoxb-2048-4096-8192abcdefGHIJKLmnop", "xoxb-2048-4096-8192abcdefGHIJKLmnop"),
    ("SECRET", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("SECRET", "Authorization: Bearer a3F9kL2mQ8xZ7pW4vB6nR1tY5uE0oI9s", "a3F9kL2mQ8xZ7pW4vB6nR1tY5uE0oI9s"),
    ("SECRET", 'api_key = "9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"', "9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"),
    ("SECRET", "secret=dGhpcyBpcyBhIHNlY3JldDEyMw==", "dGhpcyBpcyBhIHNlY3JldDEyMw=="),
]

MUST_NOT_FIND = [
    ("EMAIL", "ping @maria, install lodash@4.17.21, log in as admin@localhost, use @app.route"),
    ("PHONE", "order 1234567890 shipped 2024-03-15; meeting 15.03.2024; ticket 555-123-4567"),
    ("PHONE", "version 10.15.7, ISBN 978-3-16-148410-0, population 8 336 817, count 1 2 3 4 5 6 7 8"),
    ("CARD", "4111 1111 1111 1112 fails Luhn; 1700000000000 is a timestamp; 1234 5678 9012 3456"),
    ("IBAN", "DE89 3704 0044 0532 0130 01 has a bad checksum; XX00 1234 5678 9012 34"),
    ("SSN", "000-12-3456, 666-45-1234, 912-34-5678, 123-00-4567, 078-05-1120 and bare 536904399"),
    ("IP", "1.2.3 and 999.1.1.1 and OID 1.3.6.1.4.1 and version 1.2.3.4 and mask 255.255.255.0"),
    ("IP", "12:30:45, MAC 00:1A:2B:3C:4D:5E, std::vector, a[1::2], ::1, dead::beef"),
    (
        "SECRET",
        "commit 3f2a9c1b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a and uuid 550e8400-e29b-41d4-a716-446655440000",
    ),
    ("SECRET", "token = get_token_from_vault_service_v2(); max_tokens=4096; password: hunter2"),
    ("SECRET", "the task-management-system-overview page; api_key: YOUR_API_KEY_HERE; AKIA alone"),
]


@pytest.mark.parametrize(("kind", "text", "expected"), MUST_FIND)
def test_finds(kind: str, text: str, expected: str) -> None:
    findings = detect(text)
    assert [(f.kind, f.text) for f in findings] == [(kind, expected)]
    assert text[findings[0].start : findings[0].end] == expected


@pytest.mark.parametrize(("kind", "text"), MUST_NOT_FIND)
def test_does_not_find(kind: str, text: str) -> None:
    assert detect(text, frozenset({kind})) == []


def test_kinds_filter_and_unknown_kinds() -> None:
    text = "mail ana@example.com or call +44 20 7946 0958"
    assert [f.kind for f in detect(text, frozenset({"PHONE"}))] == ["PHONE"]
    assert [f.kind for f in detect(text)] == ["EMAIL", "PHONE"]
    with pytest.raises(ValueError, match="allowed: CARD, EMAIL"):
        detect(text, frozenset({"EMAIL", "PASSPORT"}))


def test_results_for_a_long_text_are_remembered_per_kinds_and_hold_no_text() -> None:
    text = "Notes from the call. " * 60 + "Reach Ana at ana@example.com or +44 20 7946 0958."
    assert [f.kind for f in detect(text, frozenset({"PHONE"}))] == ["PHONE"]
    assert [f.kind for f in detect(text)] == ["EMAIL", "PHONE"]
    again = detect(text)
    assert [(f.kind, f.text) for f in again] == [("EMAIL", "ana@example.com"), ("PHONE", "+44 20 7946 0958")]
    memo = pii_detectors._memo._spans
    assert all(isinstance(digest, bytes) and len(digest) == 16 for digest, _, _ in memo)
    assert not any("ana@example.com" in str(spans) for spans in memo.values())


def test_a_key_in_a_urls_user_part_is_a_secret_not_an_email() -> None:
    text = "git clone https://ghp_1A2b3C4d5E6f7G8h9I0jK1lM2nO3pQ4rS5tU6@github.com/o/r.git"
    assert [f.kind for f in detect(text)] == ["SECRET"]


def test_offsets_hold_beyond_latin1_and_the_bmp() -> None:
    text = "📞 電話 +86 138 0013 8000 ✉️ wang.fang@example.cn"
    found = detect(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("PHONE", "+86 138 0013 8000"),
        ("EMAIL", "wang.fang@example.cn"),
    ]


def test_findings_are_sorted_and_do_not_overlap() -> None:
    text = " ".join(row["text"] for row in load_corpus()[:80])
    found = detect(text)
    assert found and all(a.end <= b.start for a, b in itertools.pairwise(found))


PATHOLOGICAL = {
    "digits and spaces": "1 " * 25000,
    "at signs": "a@" * 25000,
    "a domain that never ends": "x@" + "a." * 25000 + "1",
    "BEGIN without END": "-----BEGIN PRIVATE KEY-----\n" * 2000,
    "JWT headers without payloads": "-eyJaaaaaaaa" * 8000,
    "one endless token after a key word": "key: " + "aB3-" * 25000,
    "IBAN-like groups": "DE89 " * 5000,
    "hex and colons": "a:" * 25000,
}


@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_no_input_makes_detection_slow(name: str) -> None:
    """Matching stays linear: ~50-100 KB of adversarial text in well under a second on a slow core."""
    text = PATHOLOGICAL[name]
    started = time.perf_counter()
    detect(text)
    assert time.perf_counter() - started < 1.0, name


# ---------------------------------------------------------------- redaction
SAMPLE = (
    "I'm Ana (ana.lopez@example.com, +44 20 7946 0958). Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 "
    "7654 32, SSN 536-90-4399, box 203.0.113.42, key sk-proj-9fK2mQ7xLp4Rt8Vb1Nc6Zw3Hy5Jd0Gs. "
    "Again: ana.lopez@example.com."
)


def test_mask_leaves_no_original_behind() -> None:
    masked, findings = redact(SAMPLE, mode="mask")
    assert {f.kind for f in findings} == ALL_KINDS
    for f in findings:
        assert f.text not in masked
    assert masked.count("[EMAIL]") == 2 and "[SECRET]" in masked and "[IBAN]" in masked
    assert masked.startswith("I'm Ana ([EMAIL], [PHONE]). Card [CARD], IBAN [IBAN], SSN [SSN], box [IP]")


def test_pseudonymise_and_restore_round_trip() -> None:
    vault = Vault()
    safe, findings = redact(SAMPLE, mode="pseudonymise", vault=vault)
    for f in findings:
        assert f.text not in safe
    assert safe.count("<EMAIL_1>") == 2, "the same original gets the same placeholder"
    assert len(vault) == len(ALL_KINDS)
    assert restore(safe, vault) == SAMPLE
    other, _ = redact("bob@example.org and ana.lopez@example.com", mode="pseudonymise", vault=vault)
    assert other == "<EMAIL_2> and <EMAIL_1>"


def test_restore_leaves_unknown_placeholders_and_escapes_json() -> None:
    vault = Vault()
    vault.placeholder("SECRET", 'line1\nline"2')
    assert restore("<SECRET_1> <SECRET_2> <EMAIL_1>", vault) == 'line1\nline"2 <SECRET_2> <EMAIL_1>'
    arguments = restore('{"to": "<SECRET_1>"}', vault, in_json=True)
    assert orjson.loads(arguments) == {"to": 'line1\nline"2'}


def test_redact_rejects_bad_modes() -> None:
    with pytest.raises(ValueError, match="needs a vault"):
        redact(SAMPLE, mode="pseudonymise")
    with pytest.raises(ValueError, match="allowed: mask, pseudonymise"):
        redact(SAMPLE, mode="hash")  # type: ignore[arg-type]


# ---------------------------------------------------------------- streaming restore
def test_restorer_handles_a_placeholder_split_at_every_point() -> None:
    vault = Vault()
    safe, _ = redact("mail ana@example.com or call +44 20 7946 0958", mode="pseudonymise", vault=vault)
    answer = f"Sure, I'll write to {safe.split()[1]} and ring {safe.split()[-1]}."
    expected = restore(answer, vault)
    assert "ana@example.com" in expected and "+44 20 7946 0958" in expected
    for cut in range(len(answer) + 1):
        for cut2 in range(cut, len(answer) + 1, 7):
            restorer = Restorer(vault)
            out = [restorer.feed(answer[:cut]), restorer.feed(answer[cut:cut2]), restorer.feed(answer[cut2:])]
            assert "".join(out) + restorer.flush() == expected, (cut, cut2)


def test_restorer_one_character_at_a_time_and_lone_angle_brackets() -> None:
    vault = Vault()
    vault.placeholder("EMAIL", "ana@example.com")
    answer = "if a < b then <EMAIL_1> else <EMAIL_12> or <EMA and <EMAIL_1"
    restorer = Restorer(vault)
    streamed = "".join(restorer.feed(ch) for ch in answer) + restorer.flush()
    assert streamed == "if a < b then ana@example.com else <EMAIL_12> or <EMA and <EMAIL_1"
    restorer = Restorer(vault)
    assert restorer.feed("x < y, ") == "x < y, ", "a '<' that cannot start a placeholder is not held"
    assert restorer.feed("see <EMAI") == "see "
    assert restorer.feed("L_1>!") == "ana@example.com!"


def test_restorer_with_an_empty_vault_passes_text_through() -> None:
    restorer = Restorer(Vault())
    assert restorer.feed("<EMAI") == "<EMAI" and restorer.flush() == ""


# ---------------------------------------------------------------- chat bodies
def chat_body() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "user": "ana.lopez@example.com",
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "send_mail", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": "You help with support tickets."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Email ana.lopez@example.com, card 4111 1111 1111 1111."},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "send_mail",
                            "arguments": '{"to": "ana.lopez@example.com", "note": "key:\\nsk-proj-9fK2mQ7xLp4Rt8Vb1Nc6Zw3Hy5Jd0Gs"}',
                        },
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "f", "arguments": "call +44 20 7946 0958"},
                    },
                    {"id": "call_3", "type": "function", "function": {"name": "g", "arguments": '{"n": 1}'}},
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "sent to ana.lopez@example.com from 203.0.113.42",
            },
            {"role": "user", "content": "Thanks! My SSN is 536-90-4399."},
        ],
    }


def test_redact_chat_body_redacts_every_text_and_never_mutates_the_input() -> None:
    body = chat_body()
    before = copy.deepcopy(body)
    out, vault, findings = redact_chat_body(body, mode="pseudonymise")
    assert body == before
    dumped = json.dumps(out)
    for original in (
        "ana.lopez@example.com",
        "4111 1111 1111 1111",
        "sk-proj-9fK2",
        "+44 20 7946 0958",
        "203.0.113.42",
        "536-90-4399",
    ):
        assert original not in dumped, original
    messages = out["messages"]
    assert out["user"] == "<EMAIL_1>"
    assert messages[1]["content"][0]["text"] == "Email <EMAIL_1>, card <CARD_1>."
    assert messages[1]["content"][1] is body["messages"][1]["content"][1], (
        "image parts are shared, not copied"
    )
    calls = messages[2]["tool_calls"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"to": "<EMAIL_1>", "note": "key:\n<SECRET_1>"}
    assert calls[1]["function"]["arguments"] == "call <PHONE_1>", (
        "arguments that are not JSON are redacted as text"
    )
    assert calls[2]["function"]["arguments"] == '{"n": 1}', "untouched arguments keep their exact text"
    assert messages[3]["content"] == "sent to <EMAIL_1> from <IP_1>"
    assert messages[4]["content"] == "Thanks! My SSN is <SSN_1>."
    assert out["tools"] == body["tools"] and out["temperature"] == 0.2
    assert Counter(f.kind for f in findings) == {
        "EMAIL": 4,
        "CARD": 1,
        "SECRET": 1,
        "PHONE": 1,
        "IP": 1,
        "SSN": 1,
    }
    assert restore(messages[4]["content"], vault) == before["messages"][4]["content"]


def test_redact_chat_body_offsets_are_per_text_and_nothing_spans_two_texts() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "my api key:"},
            {"role": "user", "content": "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2 is not after a key word here"},
            {"role": "user", "content": "call +44 20"},
            {"role": "user", "content": "7946 0958 later"},
        ]
    }
    out, _, findings = redact_chat_body(body, mode="mask")
    assert findings == []
    assert out == body and out is not body and out["messages"][0] is not body["messages"][0]
    _, _, findings = redact_chat_body(
        {"messages": [{"role": "user", "content": "x\nbob@example.org"}]}, mode="mask"
    )
    assert [(f.start, f.end, f.text) for f in findings] == [(2, 17, "bob@example.org")]


def test_redact_chat_body_mask_mode_and_odd_shapes() -> None:
    body = {"messages": [{"role": "user", "content": "bob@example.org"}, "not a message", {"role": "user"}]}
    out, vault, findings = redact_chat_body(body, mode="mask", kinds=frozenset({"EMAIL"}))
    assert out["messages"] == [{"role": "user", "content": "[EMAIL]"}, "not a message", {"role": "user"}]
    assert len(vault) == 0 and [f.kind for f in findings] == ["EMAIL"]

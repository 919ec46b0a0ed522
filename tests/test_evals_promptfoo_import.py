"""promptfoo suites in the shapes its documentation gives (tests/fixtures/promptfoo/: our own files) import
as the cases a person would expect (issue 21 item 1): file:// prompts and vars, CSV and JSON tests,
defaultTest, $ref, llm-rubric, similar; YAML read as promptfoo reads it; every problem listed at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from modelyard.evals.golden import Check, GoldenSet, GoldenSetError, load_golden_set
from modelyard.evals.preflight import preflight
from modelyard.evals.promptfoo import convert_promptfoo, import_promptfoo
from modelyard.evals.promptfoo_asserts import assertion_from_string
from modelyard.evals.promptfoo_yaml import Yaml12Loader

EXAMPLES = Path(__file__).parent / "fixtures" / "promptfoo"
NO_SORRY = Check("regex", {"pattern": r"\A(?![\s\S]*?(?:sorry))", "flags": "i"})


def config(name: str) -> Path:
    return EXAMPLES / name / "promptfooconfig.yaml"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_inline_config_keeps_yes_a_string() -> None:
    cases = import_promptfoo(config("inline"))
    prompt = "Classify this support email as billing, bug or other. Reply with one word. Email: "
    assert [c.messages for c in cases] == [
        user(prompt + "Yes"),  # YAML 1.1 would have made this "True"
        user(prompt + "I was charged twice for my plan."),
        user(prompt + "The export button crashes the app on 2024-01-01 at 12:30"),  # no date, no base 60
    ]
    assert cases[0].checks == (Check("exact", {"any_of": ["other"]}),) and cases[0].expected == "other"
    assert cases[0].tags == ("description:a plain yes is not a boolean",)
    assert cases[1].checks == (
        Check("contains", {"value": "billing", "ignore_case": True}),
        Check("regex", {"pattern": r"\A(?![\s\S]*?(?:bug))"}),  # not-contains
    )
    assert cases[1].tags == ("team:payments",)
    assert cases[2].tags == ("metric:accuracy",)


def test_file_prompts_glob_split_and_chat_with_a_var_from_a_file() -> None:
    cases = import_promptfoo(config("file-prompts"))
    ids = ["short.txt", "title.txt#1", "title.txt#2", "chat"]
    assert [c.id for c in cases] == [f"test-{n}@{label}" for n in (1, 2) for label in ids]
    article = "The city council approved a new bike lane on Main Street on Tuesday.\n"
    by_id = {c.id: c for c in cases}
    assert by_id["test-1@title.txt#2"].messages == user(f"Give three keywords for:\n{article}")
    assert by_id["test-1@chat"].messages == [
        {"role": "system", "content": "You summarise news for busy readers."},
        {"role": "user", "content": f"Summarise: {article}"},
    ]
    assert by_id["test-2@short.txt"].tags == ("prompt:short.txt",)


def test_csv_tests_with_expected_columns() -> None:
    cases = import_promptfoo(config("csv-tests"))
    assert [c.messages for c in cases] == [
        user("Translate to French: Hello"),
        user("Translate to Spanish: Thank you, friend"),
        user("Translate to German: Good night"),
        user("Translate to Italian: Yes"),
    ]
    french, spanish, german, italian = cases
    assert french.checks == (Check("exact", {"any_of": ["Bonjour"]}),)  # no prefix: equals
    assert french.tags == ("description:greeting", "metric:translation")
    assert spanish.checks == (
        Check("contains", {"value": "gracias", "ignore_case": True}),
        Check("regex", {"pattern": r"\A(?![\s\S]*?(?:thank))"}),
    )
    assert german.checks == (
        Check("regex", {"pattern": r"Gute\ Nacht|gute\ Nacht"}),
        Check("judge", {"rubric": "A natural German good-night wish"}),
    )
    assert german.tags == ()  # empty __description and __metric cells add nothing
    assert italian.checks == (Check("similarity", {"value": "Sì", "threshold": 0.75}),)


def test_default_test_vars_asserts_options_and_refs() -> None:
    imported = convert_promptfoo(config("default-test"))
    water, pirate = imported.cases
    assert water.messages == user(
        "You are a concise assistant. Question: What is the boiling point of water at sea level?"
    )
    assert pirate.messages == user("You are a pirate. Question: Say hello.")  # the test's var wins
    assert water.checks == (
        Check("contains", {"value": "100"}),
        Check("judge", {"rubric": "Answers in at most two sentences"}),  # $ref to a template
        NO_SORRY,  # defaultTest's assertion, itself a $ref
    )
    assert pirate.checks[-1] == NO_SORRY
    dropped = imported.summary.dropped
    assert dropped["options.provider (the run's --judge grades)"] == 1
    assert dropped["assertionTemplates (read through $ref)"] == 1


def test_llm_rubric_with_thresholds_and_expanded_vars() -> None:
    cases = import_promptfoo(config("llm-rubric"))
    assert [(c.id, c.messages) for c in cases] == [
        ("test-1.1", user("Write a one-line friendly reply to: My parcel is late.")),
        ("test-1.2", user("Write a one-line formal reply to: My parcel is late.")),
    ]
    assert cases[0].checks == (
        Check("judge", {"rubric": "Acknowledges the late parcel with empathy", "threshold": 0.8}),
        Check("judge", {"rubric": "Does not promise a refund"}),
    )


def test_similar_from_a_json_tests_file() -> None:
    cases = import_promptfoo(config("similar"))
    assert [c.checks for c in cases] == [
        (
            Check(
                "similarity",
                {
                    "value": "Sunlight scatters off air molecules, and blue light scatters most.",
                    "threshold": 0.7,
                },
            ),
        ),
        (Check("similarity", {"value": "Bees make honey.", "threshold": 0.8}),),  # promptfoo's default
    ]


@pytest.mark.parametrize(
    "name", ["inline", "file-prompts", "csv-tests", "default-test", "llm-rubric", "similar"]
)
def test_every_example_imports_to_a_set_a_run_accepts(name: str, tmp_path: Path) -> None:
    out = tmp_path / "set.jsonl"
    result = CliRunner().invoke(eval_command, ["import-promptfoo", str(config(name)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    golden = load_golden_set(out)
    assert preflight(golden, judge_model="judge") == []


def test_everything_unsupported_is_listed_at_once_with_lines() -> None:
    with pytest.raises(GoldenSetError) as caught:
        import_promptfoo(config("unsupported"))
    lines = str(caught.value).splitlines()
    where = [line.split(": ")[0].rsplit("/", 1)[-1] + ": " + line.split(": ")[1] for line in lines[1:-1]]
    assert lines[0].startswith("6 problem(s)")
    assert where == [
        "promptfooconfig.yaml:7: defaultTest.options.transform",  # once, not once per test
        "promptfooconfig.yaml:11: tests[0].assert[0].type",
        "promptfooconfig.yaml:15: tests[1].assert[0].type",
        "promptfooconfig.yaml:19: tests[1].assert[1].weight",
        "promptfooconfig.yaml:21: tests[2].providerOutput",
        "promptfooconfig.yaml:26: tests[3].assert[0]",
    ]
    assert "$ref '#/nowhere': nothing at 'nowhere'" in lines[-2]


def test_skip_unsupported_imports_the_rest_and_lists_what_it_skipped(tmp_path: Path) -> None:
    source = tmp_path / "mixed.yaml"
    source.write_text(
        "prompts: ['Q: {{q}}']\ntests:\n"
        "  - vars: {q: a}\n    assert: [{type: equals, value: a}]\n"
        "  - vars: {q: b}\n    assert: [{type: javascript, value: 'true'}]\n"
        "  - vars: {q: c}\n    assert: [{type: contains, value: c}]\n",
        encoding="utf-8",
    )
    imported = convert_promptfoo(source, skip_unsupported=True)
    assert [c.id for c in imported.cases] == ["test-1", "test-3"]
    (skipped,) = imported.summary.skipped
    assert skipped.startswith("test-2: ") and "mixed.yaml:6: tests[1].assert[0].type: 'javascript'" in skipped


YAML_12: list[tuple[str, Any]] = [
    ("Yes", "Yes"), ("No", "No"), ("on", "on"), ("OFF", "OFF"), ("y", "y"), ("n", "n"),
    ("2024-01-01", "2024-01-01"), ("12:30", "12:30"), ("1_000", "1_000"), ("'007'", "007"),
    ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    ("42", 42), ("0777", 777), ("0o17", 15), ("0x1F", 31), ("0.50", 0.5), ("1e3", 1000.0),
]  # fmt: skip


@pytest.mark.parametrize(("scalar", "value"), YAML_12)
def test_yaml_is_read_by_the_1_2_core_schema_as_promptfoo_reads_it(scalar: str, value: Any) -> None:
    assert yaml.load(f"v: {scalar}", Loader=Yaml12Loader) == {"v": value}  # noqa: S506 (a safe loader)


SHORTHAND: list[tuple[str, dict[str, Any]]] = [
    ("Paris", {"type": "equals", "value": "Paris"}),
    ("Paris: the capital", {"type": "equals", "value": "Paris: the capital"}),
    ("contains: Hello", {"type": "contains", "value": "Hello"}),
    ("icontains-any: a, b,c", {"type": "icontains-any", "value": ["a", "b", "c"]}),
    ("similar(0.9): close text", {"type": "similar", "value": "close text", "threshold": 0.9}),
    ("not-contains: x", {"type": "not-contains", "value": "x"}),
    ("grade: polite", {"type": "llm-rubric", "value": "polite"}),
    ("llm-rubric: polite", {"type": "llm-rubric", "value": "polite"}),
    ("is-json", {"type": "is-json"}),
    ("javascript: output.length < 5", {"type": "javascript", "value": "output.length < 5"}),
    ("fn: x", {"type": "javascript", "value": "x"}),
    ("python: len(output) < 5", {"type": "python", "value": "len(output) < 5"}),
]


@pytest.mark.parametrize(("cell", "assertion"), SHORTHAND)
def test_csv_expected_cells_read_as_promptfoo_reads_them(cell: str, assertion: dict[str, Any]) -> None:
    assert assertion_from_string(cell) == assertion


def test_a_file_that_is_not_utf8_is_an_error_with_its_line(tmp_path: Path) -> None:
    source = tmp_path / "latin1.yaml"
    source.write_bytes("prompts: ['Q: {{q}}']\ntests:\n  - vars: {q: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(GoldenSetError, match=r"latin1.yaml:3: not UTF-8 text \(byte 0xe9\); save the file"):
        import_promptfoo(source)


def test_a_csv_row_problem_cites_the_row_line(tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text(
        'q,__expected\n"multi\nline",a\nok,"javascript: output"\n', encoding="utf-8"
    )
    (tmp_path / "c.yaml").write_text("prompts: ['{{q}}']\ntests: file://tests.csv\n", encoding="utf-8")
    with pytest.raises(GoldenSetError, match=r"tests.csv:4: row 2.assert\[0\].type: 'javascript'"):
        import_promptfoo(tmp_path / "c.yaml")


def test_prompt_functions_and_missing_files_are_problems(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "prompts: [file://make_prompt.py:render]\ntests: [file://missing.yaml]\n", encoding="utf-8"
    )
    with pytest.raises(GoldenSetError) as caught:
        import_promptfoo(tmp_path / "c.yaml")
    message = str(caught.value)
    assert "c.yaml:2: tests[0]: file://missing.yaml: no such file" in message
    assert "c.yaml:1: prompts[0]: file://make_prompt.py:render: prompt functions run code" in message


def test_imported_cases_are_a_golden_set() -> None:
    golden = GoldenSet("x", tuple(import_promptfoo(config("inline"))))
    assert preflight(golden, judge_model=None) == []

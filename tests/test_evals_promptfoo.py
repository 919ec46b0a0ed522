"""The promptfoo importer: vars rendered into the prompt, assertions mapped to checks, the rest refused
with the file line and field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.eval import eval_command
from modelyard.evals.evaluators import build_deterministic
from modelyard.evals.golden import Check, GoldenCase, GoldenSetError, load_golden_set
from modelyard.evals.promptfoo import convert_promptfoo, import_promptfoo
from tests.fakes.scripted_openai import FIXTURES

CONFIG = FIXTURES / "promptfooconfig.yaml"
ANY_TEXT = Check("regex", {"pattern": r"\S"})  # the config's defaultTest assertion, added to every test


def test_config_tests_become_cases_with_mapped_checks() -> None:
    cases = import_promptfoo(CONFIG, workload="support")
    assert [c.id for c in cases] == ["test-1", "test-2", "test-3", "test-4"]
    assert all(c.workload == "support" for c in cases)
    first, colours, invoice, hello = cases
    assert first.messages == [{"role": "user", "content": "Answer briefly. What is the capital of France?"}]
    assert first.expected == "Paris"
    assert first.checks == (Check("exact", {"any_of": ["Paris"]}), ANY_TEXT)
    assert colours.checks[0] == Check("regex", {"pattern": "red|blue|yellow", "flags": "i"})
    assert colours.tags == ("topic:colours",)
    assert invoice.checks[:2] == (
        Check("json_schema", {"schema": {"type": "object", "required": ["vendor", "total"]}}),
        Check("contains", {"values": ['"vendor"', '"total"']}),
    )
    assert hello.checks[:3] == (
        Check("regex", {"pattern": r"\AHello"}),
        Check("contains", {"value": "Ada", "ignore_case": True}),  # assertion values are templated too
        Check("judge", {"rubric": "Greets Ada politely.", "threshold": 0.7}),
    )


@pytest.mark.parametrize(
    ("check", "answer", "passes"),
    [
        (Check("regex", {"pattern": "red|blue|yellow", "flags": "i"}), "Blue, I'd say.", True),
        (Check("regex", {"pattern": "red|blue|yellow", "flags": "i"}), "Green.", False),
        (Check("regex", {"pattern": r"\AHello"}), "Hello, Ada!", True),
        (Check("regex", {"pattern": r"\AHello"}), "Well, Hello Ada", False),
        (Check("json_schema", {"schema": {}}), '{"any": ["json"]}', True),  # is-json without a schema
        (Check("json_schema", {"schema": {}}), "not json", False),
    ],
)
async def test_mapped_checks_mean_what_promptfoo_means(check: Check, answer: str, passes: bool) -> None:
    case = GoldenCase(id="c", messages=[{"role": "user", "content": "q"}])
    assert (await build_deterministic(check).evaluate(case, answer)).passed is passes


def test_a_bare_tests_list_with_a_chat_prompt(tmp_path: Path) -> None:
    source = tmp_path / "tests.yaml"
    source.write_text(
        "- vars: {city: Rome}\n  assert:\n    - {type: contains, value: Italy}\n", encoding="utf-8"
    )
    chat = '[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Where is {{city}}?"}]'
    (case,) = import_promptfoo(source, prompt=chat)
    assert case.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Where is Rome?"},
    ]
    with pytest.raises(GoldenSetError, match="no prompts; pass the template with --prompt"):
        import_promptfoo(source)


BAD = """\
prompts: ['Q: {{question}}']
tests:
  - vars: {question: one}
    assert:
      - type: equals
        value: '1'
      - type: javascript
        value: output.length < 10
  - vars: {question: two}
    assert:
      - type: not-contains
        value: three
  - vars: {question: four}
    options: {transform: output.trim()}
    assert:
      - {type: contains, value: '4'}
  - vars: {other: x}
    assert:
      - {type: regex, value: '('}
  - vars: {question: six}
"""


def test_unsupported_features_are_refused_with_line_and_field_all_at_once(tmp_path: Path) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(BAD, encoding="utf-8")
    with pytest.raises(GoldenSetError) as caught:
        import_promptfoo(source)
    message = str(caught.value)
    assert "4 problem(s)" in message
    assert (
        f"{source}:7: tests[0].assert[1].type: 'javascript' is not supported (it runs JavaScript)" in message
    )
    assert f"{source}:14: tests[2].options.transform: not supported: it changes the answer" in message
    assert f"{source}:19: tests[3].assert[0].value: 'pattern' is not a valid regular expression" in message
    assert f"{source}:20: tests[4]: no assertions" in message
    assert "tests[1]" not in message  # not-contains maps to a check: imported
    assert message.count("supported assertion types:") == 1


def _one_test(folder: Path, variables: str) -> Path:
    source = folder / "t.yaml"
    source.write_text(
        f"prompts: ['Q: {{{{question}}}}']\ntests:\n  - vars:\n      {variables}\n"
        "    assert: [{type: equals, value: y}]\n",
        encoding="utf-8",
    )
    return source


def test_an_unset_variable_renders_empty_as_in_promptfoo_and_is_noted(tmp_path: Path) -> None:
    imported = convert_promptfoo(_one_test(tmp_path, "other: x"))
    assert imported.cases[0].messages[0]["content"] == "Q: "
    assert any("question not set: rendered empty" in line for line in imported.summary.lines(1))


def test_list_values_expand_into_one_case_per_value_as_in_promptfoo(tmp_path: Path) -> None:
    cases = import_promptfoo(_one_test(tmp_path, "question: [a, b]"))
    assert [(c.id, c.messages[0]["content"]) for c in cases] == [("test-1.1", "Q: a"), ("test-1.2", "Q: b")]


def test_cli_import_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "set.jsonl"
    result = CliRunner().invoke(eval_command, ["import-promptfoo", str(CONFIG), "-o", str(out)])
    assert result.exit_code == 0 and "wrote 4 cases" in result.output, result.output
    assert "4 tests x 1 prompt(s) -> 4 cases" in result.output
    assert "mapped: contains-all->contains x1" in result.output
    assert (
        "dropped: description (not used) x1; providers (the candidates are the run's -m models) x1"
        in result.output
    )
    assert len(load_golden_set(out).cases) == 4
    check = CliRunner().invoke(eval_command, ["validate", str(out)])
    assert "checks: contains, exact, json_schema, judge, regex" in check.output

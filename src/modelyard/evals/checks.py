"""Turn a golden set's checks into evaluator objects, once per distinct check, before any model is called.

Everything that can be wrong with a set's checks (an unknown type, a bad parameter, a case lacking the
``expected`` its check needs, a judge model the gateway does not serve) is found here, so a run either
starts sound or spends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from modelyard.evals.evaluators import CheckError, Evaluator, Verdict, build_deterministic
from modelyard.evals.golden import Check, GoldenCase, GoldenSet
from modelyard.evals.model_evaluators import CallFn, JudgeEvaluator, SimilarityEvaluator, VerdictCache
from modelyard.gateway.targets import Target

_NEEDS_REFERENCE = {"similarity"}


@dataclass(slots=True)
class CheckSet:
    """The evaluators of one golden set, keyed by their check."""

    by_check: dict[str, Evaluator] = field(default_factory=dict)
    judges: list[JudgeEvaluator] = field(default_factory=list)

    def for_check(self, check: Check) -> Evaluator:
        return self.by_check[_key(check)]

    async def score(self, case: GoldenCase, output: str) -> Verdict:
        """All of the case's checks: the mean score; passed only when every check passed; the reasons of the
        failed checks (or of all, when every one passed). When any check could not grade the answer (a judge
        error), the case has no score: the verdict carries the errors instead."""
        verdicts = [await self.for_check(c).evaluate(case, output) for c in case.checks]
        errors = [f"{c.type}: {v.error}" for c, v in zip(case.checks, verdicts, strict=True) if v.error]
        if errors:
            joined = "; ".join(errors)
            return Verdict(0.0, False, joined, error=joined)
        score = sum(v.score for v in verdicts) / len(verdicts)
        failed = [f"{c.type}: {v.reason}" for c, v in zip(case.checks, verdicts, strict=True) if not v.passed]
        if failed:
            return Verdict(score, False, "; ".join(failed))
        return Verdict(
            score,
            True,
            "; ".join(f"{c.type}: {v.reason}" for c, v in zip(case.checks, verdicts, strict=True)),
        )

    @property
    def judge_spent(self) -> Decimal | None:
        """USD spent on judge calls; None when any was unpriced."""
        total: Decimal | None = Decimal(0)
        for judge in self.judges:
            total = None if total is None or judge.spent is None else total + judge.spent
        return total


def _key(check: Check) -> str:
    return orjson.dumps([check.type, check.params], option=orjson.OPT_SORT_KEYS).decode()


def needed_models(golden: GoldenSet, judge_model: str | None) -> set[str]:
    """Models the checks will call (a judge named in a check, or the run's default judge)."""
    models = set()
    for case in golden.cases:
        for check in case.checks:
            if check.type == "judge":
                model = check.params.get("model", judge_model)
                if not isinstance(model, str):
                    raise CheckError(f"case {case.id!r}: a judge check needs 'model' or the run's --judge")
                models.add(model)
    return models


def build_checks(
    golden: GoldenSet,
    targets: Mapping[str, Target],
    judge_model: str | None,
    cache: VerdictCache | None,
    call: CallFn | None = None,
) -> CheckSet:
    """Build and validate every check of ``golden``; raises :class:`CheckError` naming the case.

    ``call`` sends the judges' model calls (the run's dispatcher, so they share its limits)."""
    checks = CheckSet()
    for case in golden.cases:
        for check in case.checks:
            try:
                evaluator = checks.by_check.get(_key(check))
                if evaluator is None:
                    evaluator = _build(check, targets, judge_model, cache, call)
                    checks.by_check[_key(check)] = evaluator
                    if isinstance(evaluator, JudgeEvaluator):
                        checks.judges.append(evaluator)
                _preflight(check, case)
            except CheckError as exc:
                raise CheckError(f"case {case.id!r}, check {check.type!r}: {exc}") from None
    return checks


def _build(
    check: Check,
    targets: Mapping[str, Target],
    judge_model: str | None,
    cache: VerdictCache | None,
    call: CallFn | None,
) -> Evaluator:
    if check.type == "similarity":
        return SimilarityEvaluator(check.params)
    if check.type == "judge":
        model = check.params.get("model", judge_model)
        target = targets.get(model) if isinstance(model, str) else None
        if target is None:
            raise CheckError(
                f"judge model {model!r} is not configured; available: {', '.join(sorted(targets))}"
            )
        return JudgeEvaluator(check.params, target, cache, call)
    return build_deterministic(check)


def reference_problem(check: Check, case: GoldenCase) -> str | None:
    """What ``case`` lacks for ``check`` to compare against (found now, not mid-run), or None."""
    params = check.params
    if check.type in _NEEDS_REFERENCE and case.expected is None and "value" not in params:
        return "needs 'expected' in the case or 'value' in the check"
    if check.type == "json_schema" and case.json_schema is None and "schema" not in params:
        return "needs 'schema' in the case or in the check"
    has_value = bool({"any_of", "value", "values"} & set(params))
    if check.type in ("exact", "contains", "numeric") and case.expected is None and not has_value:
        return "needs 'expected' in the case or a value in the check"
    return None


def _preflight(check: Check, case: GoldenCase) -> None:
    problem = reference_problem(check, case)
    if problem is not None:
        raise CheckError(problem)

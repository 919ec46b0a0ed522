"""Evaluators that need a model: embedding similarity (in-process) and LLM-as-judge (through the gateway).

``similarity`` embeds the answer and the reference with the in-process open embedding model
(all-MiniLM-L6-v2, see providers/local_embeddings.py): no key, no network, the same score on every machine.

``judge`` asks any chat model configured in the gateway to grade the answer against a rubric, through
the same adapters as the candidates, at temperature 0, within the run's concurrency bound, provider rate
limits and retries (the runner's dispatcher). Its verdicts are cached (a re-run never pays twice for the
same grading) and its spend is counted apart from the candidates'. A judge that fails (its call fails, or
its reply cannot be read) gives an *error*, never a score: the case is left ungraded, counted, reported and
not cached, so the next run asks again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import orjson

from modelyard.evals.calls import CallResult, CallTag, ModelParams, call_target
from modelyard.evals.evaluators import CheckError, Verdict, check_fraction, check_param, reference_text
from modelyard.evals.golden import GoldenCase
from modelyard.gateway.targets import Target


class SimilarityEvaluator:
    name = "similarity"

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.value: str | None = check_param(params, "value", str)
        self.threshold = check_fraction(params, "threshold", 0.8)

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        reference = reference_text(case, self.value, "similarity")
        similarity = await asyncio.to_thread(cosine_similarity, output, reference)
        score = max(0.0, min(1.0, similarity))
        verdict = "at least" if similarity >= self.threshold else "below"
        return Verdict(
            score, similarity >= self.threshold, f"similarity {similarity:.3f} {verdict} {self.threshold}"
        )


def cosine_similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts' embeddings (they are L2-normalised, so it is the dot product)."""
    from modelyard.providers.local_embeddings import embed_texts  # loads torch: only when used

    (va, vb), _tokens = embed_texts([a, b])
    return float(sum(x * y for x, y in zip(va, vb, strict=True)))


class VerdictCache(Protocol):
    """Where judge verdicts are kept between runs (the runner's SQLite cache implements it)."""

    def get_verdict(self, key: str) -> Verdict | None: ...

    def put_verdict(self, key: str, verdict: Verdict) -> None: ...


#: How a judge sends its call: the run's dispatcher (shared limits and retries, and the ledger, where the
#: tag marks it a ``judge`` call of the case's workload), or one plain attempt.
CallFn = Callable[[Target, list[dict[str, Any]], ModelParams, CallTag], Awaitable[CallResult]]

JUDGE_INSTRUCTIONS = (
    "You grade an AI assistant's answer. Apply the rubric strictly. Reply with only a JSON object: "
    '{"score": <number from 0 to 1>, "reason": "<one sentence>"}.'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeEvaluator:
    name = "judge"

    def __init__(
        self,
        params: Mapping[str, Any],
        target: Target,
        cache: VerdictCache | None,
        call: CallFn | None = None,
    ) -> None:
        rubric = check_param(params, "rubric", str)
        if not rubric:
            raise CheckError("judge needs 'rubric': what a good answer does")
        self.rubric: str = rubric
        self.threshold = check_fraction(params, "threshold", 0.5)
        self.target = target
        self.cache = cache
        self.call: CallFn = call or call_target
        #: USD spent on judge calls in this run; None once any judge call was unpriced.
        self.spent: Decimal | None = Decimal(0)
        self.calls = 0
        #: Gradings that failed (call failed, reply unreadable) in this run.
        self.errors = 0
        self._running: dict[str, asyncio.Future[Verdict]] = {}

    def _messages(self, case: GoldenCase, output: str) -> list[dict[str, Any]]:
        question = orjson.dumps(case.messages).decode()
        reference = f"\n\nReference answer:\n{case.expected}" if case.expected is not None else ""
        prompt = (
            f"Rubric:\n{self.rubric}\n\nConversation:\n{question}{reference}\n\nAnswer to grade:\n{output}"
        )
        return [{"role": "system", "content": JUDGE_INSTRUCTIONS}, {"role": "user", "content": prompt}]

    def _key(self, messages: list[dict[str, Any]]) -> str:
        raw = orjson.dumps([self.target.public_model, self.target.upstream_model, messages])
        return hashlib.sha256(raw).hexdigest()

    async def evaluate(self, case: GoldenCase, output: str) -> Verdict:
        messages = self._messages(case, output)
        key = self._key(messages)
        cached = self.cache.get_verdict(key) if self.cache else None
        if cached is not None:
            return cached
        # Identical gradings asked at the same time (two candidates, same answer) share one judge call.
        running = self._running.get(key)
        if running is None:
            tag = CallTag("judge", case.workload, case.id)
            running = self._running[key] = asyncio.ensure_future(self._grade(messages, key, tag))
        return await running

    async def _grade(self, messages: list[dict[str, Any]], key: str, tag: CallTag) -> Verdict:
        result = await self.call(self.target, messages, ModelParams(temperature=0.0, seed=0), tag)
        self.calls += 1
        self.spent = None if self.spent is None or result.cost is None else self.spent + result.cost
        if result.error is not None:
            # The judge, not the candidate, failed: an error, never a 0; not cached, so retried next run.
            self.errors += 1
            message = f"judge call failed: {result.error}"
            return Verdict(0.0, False, message, error=message)
        verdict = parse_judgement(result.output, self.threshold)
        if verdict.error is not None:
            self.errors += 1
            return verdict  # not cached: the next run asks again
        if self.cache:
            self.cache.put_verdict(key, verdict)
        return verdict


def parse_judgement(text: str, threshold: float) -> Verdict:
    """The judge's ``{"score", "reason"}`` reply → a verdict.

    A reply that cannot be read (no JSON object, no number, a score outside 0–1 such as 7 or "9/10", a
    string, an empty reply) is a judge error: the verdict carries ``error`` and no usable score.
    """
    match = _JSON_OBJECT.search(text)
    try:
        raw = orjson.loads(match.group(0)) if match else None
    except orjson.JSONDecodeError:
        raw = None
    score = raw.get("score") if isinstance(raw, dict) else None
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
        message = f"judge reply not understood: {text[:80]!r}"
        return Verdict(0.0, False, message, error=message)
    reason = str(raw.get("reason", "")) if isinstance(raw, dict) else ""
    return Verdict(float(score), score >= threshold, f"judge {score:g}: {reason}".strip())

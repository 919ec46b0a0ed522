"""A fake OpenAI-compatible server whose answers are scripted per model and per prompt.

Speaks ``POST /v1/chat/completions`` (non-streaming) in the published ``chat.completion`` shape with
``usage``. Each upstream model name picks a behaviour:

- ``good-model``: the scripted answer for the last user message (``ScriptedState.answers``);
- ``bad-json-model``: as good, except where the scripted answer is JSON it answers with broken JSON;
- ``slow-model``: as good, after sleeping ``ScriptedState.slow_s``;
- ``judge-model``: a grader: ``{"score": 1, ...}`` when the graded answer contains ``JUDGE_PASS_WORD``;
- ``broken-model``: HTTP 200 with a truncated body (a malformed response, not just wrong content);
- anything else: 404 ``model_not_found``, as OpenAI answers.

Usage is one token per 4 characters (at least 1), so costs are predictable in tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

JUDGE_PASS_WORD = "Paris"


@dataclass
class ScriptedState:
    answers: dict[str, str] = field(default_factory=dict)
    slow_s: float = 0.05
    #: (model, last user message) of every request, in arrival order.
    received: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    #: Arrival times (loop clock) of requests, to check rate limits.
    arrivals: list[float] = field(default_factory=list)


SCRIPT = web.AppKey("script", ScriptedState)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _answer(state: ScriptedState, model: str, prompt: str) -> str | None:
    if model == "judge-model":
        graded = prompt.rpartition("Answer to grade:")[2]
        if JUDGE_PASS_WORD in graded:
            return '{"score": 1, "reason": "names the capital"}'
        return '{"score": 0.2, "reason": "wrong city"}'
    answer = state.answers.get(prompt, "I do not know")
    if model == "bad-json-model" and answer.lstrip().startswith("{"):
        return answer[: len(answer) // 2]  # cut mid-object: not valid JSON
    if model in ("good-model", "slow-model", "bad-json-model"):
        return answer
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[SCRIPT]
    body = await request.json()
    model, prompt = body["model"], _last_user(body["messages"])
    state.received.append((model, prompt))
    state.arrivals.append(asyncio.get_running_loop().time())
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        if model == "slow-model":
            await asyncio.sleep(state.slow_s)
        if model == "broken-model":
            return web.Response(
                body=b'{"id": "chatcmpl-1", "object": "chat.comp', content_type="application/json"
            )
        answer = _answer(state, model, prompt)
        if answer is None:
            error = {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                     "param": None, "code": "model_not_found"}  # fmt: skip
            return web.json_response({"error": error}, status=404)
        prompt_tokens = sum(_tokens(str(m.get("content", ""))) for m in body["messages"])
        completion_tokens = _tokens(answer)
        return web.json_response(
            {
                "id": f"chatcmpl-{len(state.received)}",
                "object": "chat.completion",
                "created": 1_763_900_000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
        )
    finally:
        state.in_flight -= 1


def create_app(state: ScriptedState) -> web.Application:
    app = web.Application()
    app[SCRIPT] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


FIXTURES = Path(__file__).parent.parent / "fixtures" / "evals"


def write_eval_config(folder: Path, base_url: str) -> Path:
    """A gateway config whose models are the scripted behaviours above, on two providers."""
    path = folder / "modelyard.yaml"
    path.write_text(
        "providers:\n"
        f"  fast: {{kind: openai_compatible, base_url: '{base_url}/v1'}}\n"
        f"  slowpool: {{kind: openai_compatible, base_url: '{base_url}/v1'}}\n"
        "models:\n"
        "  good: {provider: fast, upstream_model: good-model}\n"
        "  badjson: {provider: fast, upstream_model: bad-json-model}\n"
        "  broken: {provider: fast, upstream_model: broken-model}\n"
        "  judge: {provider: fast, upstream_model: judge-model}\n"
        "  slow: {provider: slowpool, upstream_model: slow-model}\n"
        "workloads:\n"
        "  support: {}\n"
        "catalog:\n"
        f"  price_files: ['{FIXTURES / 'prices.yaml'}']\n",
        encoding="utf-8",
    )
    return path

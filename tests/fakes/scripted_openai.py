"""A fake OpenAI-compatible server whose answers are scripted per model and per prompt.

Speaks ``POST /v1/chat/completions`` (non-streaming) in the published ``chat.completion`` shape with
``usage``. Each upstream model name picks a behaviour:

- ``good-model``: the scripted answer for the last user message (``ScriptedState.answers``);
- ``bad-json-model``: as good, except where the scripted answer is JSON it answers with broken JSON;
- ``slow-model``: as good, after sleeping ``ScriptedState.slow_s``;
- ``judge-model``: a grader: ``{"score": 1, ...}`` when the graded answer contains ``JUDGE_PASS_WORD``;
- ``scripted-judge-model``: replies with ``ScriptedState.judge_replies`` in turn (any text: a broken
  verdict), then as ``judge-model``;
- ``broken-model``: HTTP 200 with a truncated body (a malformed response, not just wrong content);
- ``flaky-model``: for each prompt, first fails with the statuses in ``ScriptedState.flaky_script``
  (default 429 twice, OpenAI's rate-limit error body, ``Retry-After: ScriptedState.retry_after`` when
  set), then answers as good;
- ``overloaded-model``: always 429 with ``Retry-After: 3600``;
- anything else: 404 ``model_not_found``, as OpenAI answers.

Usage is one token per 4 characters (at least 1), so costs are predictable in tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.common import serve_app

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
    #: HTTP statuses ``flaky-model`` answers a prompt with before it answers it properly.
    flaky_script: list[int] = field(default_factory=lambda: [429, 429])
    #: ``Retry-After`` seconds sent with the flaky failures (None: no header).
    retry_after: str | None = None
    flaky_seen: dict[str, int] = field(default_factory=dict)
    #: What ``scripted-judge-model`` replies, one per request, before it grades like ``judge-model``.
    judge_replies: list[str] = field(default_factory=list)


SCRIPT = web.AppKey("script", ScriptedState)

#: OpenAI's error bodies for the statuses the flaky models send.
_ERRORS = {
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def _error(status: int, retry_after: str | None) -> web.Response:
    message, kind, code = _ERRORS[status]
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)


def _flaky_failure(state: ScriptedState, prompt: str) -> web.Response | None:
    seen = state.flaky_seen.get(prompt, 0)
    state.flaky_seen[prompt] = seen + 1
    if seen < len(state.flaky_script):
        return _error(state.flaky_script[seen], state.retry_after)
    return None


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _answer(state: ScriptedState, model: str, prompt: str) -> str | None:
    if model == "scripted-judge-model" and state.judge_replies:
        return state.judge_replies.pop(0)
    if model in ("judge-model", "scripted-judge-model"):
        graded = prompt.rpartition("Answer to grade:")[2]
        if JUDGE_PASS_WORD in graded:
            return '{"score": 1, "reason": "names the capital"}'
        return '{"score": 0.2, "reason": "wrong city"}'
    answer = state.answers.get(prompt, "I do not know")
    if model == "bad-json-model" and answer.lstrip().startswith("{"):
        return answer[: len(answer) // 2]  # cut mid-object: not valid JSON
    if model in ("good-model", "slow-model", "bad-json-model", "flaky-model"):
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
        if model == "overloaded-model":
            return _error(429, "3600")
        if model == "flaky-model" and (failure := _flaky_failure(state, prompt)) is not None:
            return failure
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


@contextmanager
def serving_in_thread(state: ScriptedState) -> Iterator[str]:
    """The fake on its own event loop in a thread, for code that runs its own loop (the CLI); yields the
    base URL."""
    loop = asyncio.new_event_loop()
    ready: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with serve_app(create_app(state)) as url:
            ready.append(url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    while not ready:
        threading.Event().wait(0.01)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


def write_eval_config(folder: Path, base_url: str) -> Path:
    """A gateway config whose models are the scripted behaviours above, on two providers; its ledger (where
    ``eval run`` records its calls) is a file in ``folder``."""
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
        "  scripted-judge: {provider: fast, upstream_model: scripted-judge-model}\n"
        "  slow: {provider: slowpool, upstream_model: slow-model}\n"
        "  flaky: {provider: fast, upstream_model: flaky-model}\n"
        "  overloaded: {provider: fast, upstream_model: overloaded-model}\n"
        "workloads:\n"
        "  support: {}\n"
        "catalog:\n"
        f"  price_files: ['{FIXTURES / 'prices.yaml'}']\n"
        f"ledger: {{url: 'sqlite:///{folder / 'ledger.db'}', writer: thread}}\n",
        encoding="utf-8",
    )
    return path

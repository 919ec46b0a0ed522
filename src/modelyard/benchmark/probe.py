"""Before any load: check the endpoint is what the user says, and calibrate prompt length to its tokenizer.

Every failure here is a :class:`BenchmarkError` whose one-line message says what is wrong and what to
check: nothing unreachable, non-OpenAI, serving another model, or silent about usage is load-tested.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import orjson

from modelyard.benchmark.client import Endpoint, RequestResult, stream_once
from modelyard.benchmark.errors import BenchmarkError
from modelyard.benchmark.workload import PromptSynth
from modelyard.transport.http1 import ConnectError, Pool

#: Word counts of the two calibration prompts: far enough apart to measure tokens per word.
CALIBRATION_WORDS = (24, 152)


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    endpoint: Endpoint
    synth: PromptSynth
    #: The engine the server names in ``GET /models`` (``owned_by``), e.g. ``vllm``; ``None`` if unknown.
    engine: str | None
    served: tuple[str, ...] | None


async def probe(pool: Pool, endpoint: Endpoint) -> EndpointInfo:
    """Check the endpoint with ``GET /models`` and two small streamed requests, which also calibrate."""
    served, owner = await _list_models(pool, endpoint)
    if served is not None and endpoint.model not in served:
        listed = ", ".join(served[:10]) or "nothing"
        raise BenchmarkError(
            f"{endpoint.base_url} does not serve model '{endpoint.model}'; it serves: {listed}"
        )
    rng = random.Random(0)
    first = await _probe_request(pool, endpoint, CALIBRATION_WORDS[0], rng)
    if first.error == "http_400" and endpoint.ignore_eos and "ignore_eos" in first.detail:
        # Not vLLM-like: answers will end at EOS or max_tokens, whichever comes first.
        endpoint = replace(endpoint, ignore_eos=False)
        first = await _probe_request(pool, endpoint, CALIBRATION_WORDS[0], rng)
    _raise_for(first, endpoint, served is not None)
    second = await _probe_request(pool, endpoint, CALIBRATION_WORDS[1], rng)
    _raise_for(second, endpoint, served is not None)
    synth = PromptSynth.calibrated(CALIBRATION_WORDS, (first.input_tokens, second.input_tokens))
    return EndpointInfo(endpoint, synth, owner, tuple(served) if served is not None else None)


async def _list_models(pool: Pool, endpoint: Endpoint) -> tuple[list[str] | None, str | None]:
    """The ids in ``GET /models`` (``None`` if the server has no such list) and the first ``owned_by``."""
    try:
        response = await pool.request(endpoint.models_head)
        status, body = response.status, bytes(response.body)
    except ConnectError as exc:
        raise BenchmarkError(
            f"cannot connect to {endpoint.base_url} ({exc}); is the server running?"
        ) from None
    except (OSError, ValueError) as exc:  # cut, timed out (TimeoutError is an OSError), or not HTTP
        raise BenchmarkError(
            f"{endpoint.base_url} did not answer GET /models: {type(exc).__name__}"
        ) from None
    if status in (401, 403):
        raise BenchmarkError(f"{endpoint.base_url} refused the API key (HTTP {status}); pass --api-key-env")
    try:
        data = orjson.loads(body)["data"] if status == 200 else None
        models = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] if data else []
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None, None
    if data is None:
        return None, None
    owner = next((str(m["owned_by"]) for m in models if m.get("owned_by")), None)
    return [m["id"] for m in models], owner


async def _probe_request(pool: Pool, endpoint: Endpoint, words: int, rng: random.Random) -> RequestResult:
    return await stream_once(pool, endpoint, endpoint.body(PromptSynth.words(words, rng), 4))


def _raise_for(result: RequestResult, endpoint: Endpoint, openai_like: bool) -> None:
    """Turn a failed probe into the one message that explains it."""
    base = endpoint.base_url
    if result.ok:
        if result.input_tokens <= 0 or result.output_tokens <= 0:
            raise BenchmarkError(
                f"{base} reported usage with no prompt or completion tokens: {result.detail}"
            )
        return
    not_openai = (
        f"{base} does not look like an OpenAI-compatible API (POST /chat/completions: {{}}); "
        "give the API base URL, usually ending in /v1"
    )
    error = result.error or ""
    if error == "connect":
        raise BenchmarkError(f"cannot connect to {base} ({result.detail}); is the server running?")
    if error == "no_usage":
        raise BenchmarkError(
            f"{base} streamed an answer but no usage (stream_options.include_usage is not supported); "
            "token counts would be guesses, so nothing is measured: upgrade or configure the server"
        )
    if error in ("http_401", "http_403"):
        raise BenchmarkError(f"{base} refused the API key ({error.replace('_', ' ')}); pass --api-key-env")
    if error == "http_404" and (openai_like or "model" in result.detail.lower()):
        raise BenchmarkError(f"{base} does not serve model '{endpoint.model}': {_message(result.detail)}")
    if error in ("http_404", "http_405", "bad_stream", "stream_cut") and not openai_like:
        raise BenchmarkError(not_openai.format(_summary(result)))
    raise BenchmarkError(f"{base} failed the probe request ({_summary(result)})")


def _summary(result: RequestResult) -> str:
    return f"{result.error}: {_message(result.detail)}" if result.detail else str(result.error)


def _message(detail: str) -> str:
    """The ``error.message`` of an OpenAI-shaped error body, else the body's start on one line."""
    try:
        body: Any = orjson.loads(detail)
        return str(body["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return " ".join(detail.split())[:120]

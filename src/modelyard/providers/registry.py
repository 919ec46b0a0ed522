"""Which adapter class serves each provider ``kind``: the registry is data (config/kinds.py), one line per
API family."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from typing import Any, Protocol

from modelyard.config.kinds import KINDS
from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError
from modelyard.providers.base import (
    JSON,
    Adapter,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
)
from modelyard.providers.http import UpstreamStream


class AdapterFactory(Protocol):
    def __call__(self, name: str, config: ProviderConfig, api_key: str | None) -> Adapter: ...


#: kind → "module:Class", from the one table of provider kinds (:mod:`modelyard.config.kinds`): adding a
#: provider is one module and one line there.
ADAPTERS: dict[str, str] = {kind: spec.adapter for kind, spec in KINDS.items()}


def adapter_factory(kind: str) -> AdapterFactory:
    module_name, _, class_name = ADAPTERS[kind].partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), class_name)
    return factory


def build_adapter(name: str, config: ProviderConfig) -> Adapter:
    """Construct the adapter for provider ``name``, reading its key from the named environment variable.

    A provider whose variable is unset gets an adapter that refuses every call with a message saying
    which variable to set, instead of sending unauthenticated requests upstream."""
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if config.api_key_env and not api_key:
        return MissingCredentials(name, config.api_key_env)
    return adapter_factory(config.kind)(name, config, api_key)


class MissingCredentials:
    """Stands in for a provider started without its API key (the gateway still starts: the demo and
    self-hosted routes need no keys)."""

    capabilities = Capabilities(embeddings=True)

    def __init__(self, name: str, env: str) -> None:
        self.name = name
        self._error = (
            f"provider {name} has no API key: set the environment variable {env} and restart the gateway"
        )

    def _refuse(self) -> UpstreamError:
        return UpstreamError(self._error, provider=self.name, code="upstream_credentials_missing", status=503)

    async def complete(self, call: ChatCall) -> ChatResult:
        raise self._refuse()

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON]:
        raise self._refuse()
        yield {}  # type: ignore[unreachable]  # makes this an async generator, as the contract asks

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        raise self._refuse()

    # The forwarded endpoints (gateway/passthrough.py: rerank, legacy completions) refuse the same way,
    # instead of failing the gateway's check that a forwarding target can forward.
    async def post_raw(self, path: str, body: JSON) -> tuple[bytes, Any]:
        raise self._refuse()

    async def open_raw_stream(self, path: str, body: JSON) -> UpstreamStream:
        raise self._refuse()

    async def close(self) -> None:
        return None

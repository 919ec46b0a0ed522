"""Which adapter class serves each provider ``kind``: the registry is data, one line per API family."""

from __future__ import annotations

import importlib
import os
from typing import Protocol

from modelyard.config.schema import ProviderConfig, ProviderKind
from modelyard.providers.base import Adapter


class AdapterFactory(Protocol):
    def __call__(self, name: str, config: ProviderConfig, api_key: str | None) -> Adapter: ...


#: kind → "module:Class". Adding a provider is one module and one line here.
ADAPTERS: dict[ProviderKind, str] = {
    "openai": "modelyard.providers.openai:OpenAIAdapter",
    "openai_compatible": "modelyard.providers.openai_compatible:OpenAICompatibleAdapter",
    "anthropic": "modelyard.providers.anthropic:AnthropicAdapter",
    "gemini": "modelyard.providers.gemini:GeminiAdapter",
    "local": "modelyard.providers.local_embeddings:LocalEmbeddingAdapter",
}


def adapter_factory(kind: ProviderKind) -> AdapterFactory:
    module_name, _, class_name = ADAPTERS[kind].partition(":")
    factory: AdapterFactory = getattr(importlib.import_module(module_name), class_name)
    return factory


def build_adapter(name: str, config: ProviderConfig) -> Adapter:
    """Construct the adapter for provider ``name``, reading its key from the named environment variable."""
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    return adapter_factory(config.kind)(name, config, api_key)

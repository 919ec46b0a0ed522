"""Self-hosted servers that speak OpenAI's format: vLLM, Ollama, TGI, llama.cpp's server.

They reuse the OpenAI translator (``openai.py``); what differs is a :class:`Profile` per server, chosen
with ``profile:`` in the provider's config. Each flag below says why that server needs it.
"""

from __future__ import annotations

from modelyard.config.schema import ProviderConfig
from modelyard.providers.base import Capabilities
from modelyard.providers.openai import OpenAIAdapter, Profile

#: Every self-hosted server is sent ``max_tokens`` (see :attr:`Profile.output_limit_field`).
_MAX_TOKENS = "max_tokens"

PROFILES: dict[str, Profile] = {
    # Unknown servers: assume the common subset and no embeddings until the config says otherwise.
    "generic": Profile(output_limit_field=_MAX_TOKENS, capabilities=Capabilities(embeddings=True)),
    # vLLM: honours stream_options.include_usage and json_schema (guided decoding); /v1/embeddings when
    # started with an embedding model.
    "vllm": Profile(output_limit_field=_MAX_TOKENS, capabilities=Capabilities(embeddings=True)),
    # Ollama's /v1 endpoint: include_usage supported since 0.5; embeddings at /v1/embeddings.
    "ollama": Profile(output_limit_field=_MAX_TOKENS, capabilities=Capabilities(embeddings=True)),
    # TGI's Messages API: structured output is {"type": "json", "value": schema}; it sends usage in the last
    # chunk by itself and rejects the stream_options field on older releases; no embeddings (that is TEI).
    "tgi": Profile(
        stream_usage_option=False,
        json_schema_style="tgi",
        output_limit_field=_MAX_TOKENS,
        capabilities=Capabilities(embeddings=False),
    ),
    # llama.cpp's llama-server: include_usage supported; embeddings only with --embeddings.
    "llamacpp": Profile(output_limit_field=_MAX_TOKENS, capabilities=Capabilities(embeddings=True)),
}


class OpenAICompatibleAdapter(OpenAIAdapter):
    """An OpenAI-format server whose quirks come from its profile."""

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.profile = PROFILES[config.profile]
        super().__init__(name, config, api_key)

"""Where a call's provider runs: on our own infrastructure, at an external API vendor, or we cannot tell.

Traffic names providers in many spellings: modelyard's own kinds (``openai``, ``openai_compatible``,
``local``), LiteLLM's ``custom_llm_provider`` (``hosted_vllm``, ``ollama_chat``, ``bedrock``…) and OpenAI's
usage exports (always ``openai``). Two decisions read this: "restricted data sent to an external API" and
"vendor concentration". A self-hosted server is never a vendor, and a provider we do not recognise is
neither counted as a vendor (a false alarm on imported traffic) nor silently trusted: it is reported as
unknown next to the figure.
"""

from __future__ import annotations

from typing import Literal

Locus = Literal["self_hosted", "external", "unknown"]

#: Servers an organisation runs itself: modelyard's kinds and profiles, and LiteLLM's names for them.
SELF_HOSTED_KINDS = frozenset(
    {
        "local",
        "self_hosted",
        "openai_compatible",
        "vllm",
        "hosted_vllm",
        "ollama",
        "ollama_chat",
        "tgi",
        "llamacpp",
        "llama.cpp",
        "llamafile",
        "lm_studio",
        "xinference",
        "triton",
        "sglang",
    }
)

#: Proprietary or managed API vendors (modelyard's kinds and LiteLLM's provider names).
EXTERNAL_KINDS = frozenset(
    {
        "openai",
        "text-completion-openai",
        "azure",
        "azure_ai",
        "anthropic",
        "gemini",
        "vertex_ai",
        "vertex_ai_beta",
        "bedrock",
        "sagemaker",
        "mistral",
        "cohere",
        "cohere_chat",
        "groq",
        "together_ai",
        "fireworks_ai",
        "deepseek",
        "xai",
        "perplexity",
        "openrouter",
        "deepinfra",
        "anyscale",
        "replicate",
        "cerebras",
        "huggingface",  # Hugging Face's hosted Inference API / endpoints: run by the vendor
        "databricks",
        "watsonx",
        "nvidia_nim",
    }
)


def locus(provider_kind: str | None) -> Locus:
    """Where a provider of this kind runs (case-insensitive); ``unknown`` for names we do not know."""
    kind = (provider_kind or "").strip().lower()
    if kind in SELF_HOSTED_KINDS:
        return "self_hosted"
    if kind in EXTERNAL_KINDS:
        return "external"
    return "unknown"


def is_external(provider_kind: str | None) -> bool:
    return locus(provider_kind) == "external"

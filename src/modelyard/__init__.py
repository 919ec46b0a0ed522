"""modelyard: an OpenAI-compatible gateway that meters every LLM call, and the numbers to decide
per workload between a proprietary API and a self-hosted open model."""

__version__ = "0.1.0"

"""Configuration: raw YAML → one validated, typed :class:`Config`; errors name the field path."""

from modelyard.config.loader import load_config, parse_config
from modelyard.config.schema import Config, ModelConfig, ProviderConfig, WorkloadConfig

__all__ = ["Config", "ModelConfig", "ProviderConfig", "WorkloadConfig", "load_config", "parse_config"]

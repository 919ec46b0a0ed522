"""Config for routes, data-class policy, resilience and the response cache.

Kept apart from schema.py so each file stays readable; ``Config`` in schema.py holds these sections.
"""

from __future__ import annotations

from typing import Any, Literal

import phonenumbers
from pydantic import ConfigDict, Field, field_validator, model_validator

from modelyard.config.strict import Strict

DataClass = Literal["public", "internal", "confidential", "restricted"]
#: Strictness order: a header may move a request right in this list, never left.
DATA_CLASS_ORDER: tuple[DataClass, ...] = ("public", "internal", "confidential", "restricted")
Strategy = Literal["single", "fallback", "loadbalance", "cascade", "shadow"]
PiiMode = Literal["off", "mask", "pseudonymise"]
#: Where national phone numbers (written without +CC) are looked for when a data class declares no
#: ``pii_regions``: the United States, the largest European markets, Brazil and Japan (docs/pii.md).
DEFAULT_PII_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "JP")


class RouteTarget(Strict):
    model: str
    #: Share of traffic under ``loadbalance`` (relative to the other targets' weights).
    weight: float = Field(1.0, gt=0)


class ValidatorConfig(Strict):
    """A check a cascade applies to an answer before accepting it (else it escalates)."""

    kind: Literal["json_schema", "regex", "non_empty", "max_length", "judge"]
    #: json_schema: the JSON Schema the answer must satisfy.
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    #: regex: a pattern the answer must contain (Python ``re.search``).
    pattern: str | None = None
    #: max_length: the most characters an acceptable answer has.
    max_chars: int | None = Field(None, ge=1)
    #: judge: a configured model that answers PASS or FAIL to ``rubric`` about the answer.
    model: str | None = None
    rubric: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _needs_its_field(self) -> ValidatorConfig:
        needed = {"json_schema": self.json_schema, "regex": self.pattern, "max_length": self.max_chars}
        if self.kind in needed and needed[self.kind] is None:
            field = {"json_schema": "schema", "regex": "pattern", "max_length": "max_chars"}[self.kind]
            raise ValueError(f"validator kind '{self.kind}' needs '{field}'")
        if self.kind == "judge" and (self.model is None or self.rubric is None):
            raise ValueError("validator kind 'judge' needs 'model' and 'rubric'")
        return self


class ShadowConfig(Strict):
    model: str
    #: Share of requests mirrored to the shadow model, off the request path.
    sample: float = Field(0.1, ge=0, le=1)


class RouteConfig(Strict):
    """A virtual model name clients can ask for, served by an ordered set of targets."""

    strategy: Strategy = "fallback"
    targets: tuple[RouteTarget, ...] = Field(min_length=1)
    validators: tuple[ValidatorConfig, ...] = ()
    shadow: ShadowConfig | None = None

    @model_validator(mode="after")
    def _strategy_fits(self) -> RouteConfig:
        if self.strategy == "single" and len(self.targets) != 1:
            raise ValueError("strategy 'single' takes exactly one target")
        if self.strategy == "cascade" and not self.validators:
            raise ValueError("strategy 'cascade' needs validators to decide when to escalate")
        if self.strategy == "shadow" and self.shadow is None:
            raise ValueError("strategy 'shadow' needs 'shadow: {model, sample}'")
        return self


class DataClassPolicy(Strict):
    """Where requests of one data class may go, and what is redacted first."""

    #: ``any``, ``self_hosted``, ``external``, or provider names (approved vendors / regions).
    allow: tuple[str, ...] = ("any",)
    pii: PiiMode = "off"
    #: Put pseudonymised values back into the answer the client receives.
    restore_pii: bool = False
    #: Regions (ISO 3166 alpha-2) whose national phone formats the redaction looks for; numbers written
    #: with their country code are found whatever this says.
    pii_regions: tuple[str, ...] = Field(DEFAULT_PII_REGIONS, min_length=1)

    @field_validator("pii_regions", mode="after")
    @classmethod
    def _known_regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # The phone library's own list: a typo must fail at start-up, not silently match nothing.
        unknown = [r for r in value if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"unknown region(s) {', '.join(unknown)}; use ISO 3166 alpha-2 codes such as "
                + ", ".join(DEFAULT_PII_REGIONS)
            )
        return value


def _default_classes() -> dict[DataClass, DataClassPolicy]:
    # Safe by default: restricted data never leaves self-hosted infrastructure unless the config says so.
    return {
        "public": DataClassPolicy(),
        "internal": DataClassPolicy(),
        "confidential": DataClassPolicy(),
        "restricted": DataClassPolicy(allow=("self_hosted",)),
    }


class PolicyConfig(Strict):
    data_classes: dict[DataClass, DataClassPolicy] = Field(default_factory=_default_classes)

    @field_validator("data_classes", mode="after")
    @classmethod
    def _all_classes(cls, value: dict[DataClass, DataClassPolicy]) -> dict[DataClass, DataClassPolicy]:
        # A class left out would otherwise allow everything: it keeps its safe default instead.
        return {**_default_classes(), **value}


class RetryConfig(Strict):
    #: Attempts on the same target after the first, for retryable failures before any byte reached the client.
    max_retries: int = Field(1, ge=0, le=10)
    backoff_base_ms: float = Field(100, ge=0)
    backoff_max_ms: float = Field(2000, ge=0)
    #: Longest ``Retry-After`` honoured; a longer one moves on to the next target instead of waiting.
    max_retry_after_s: float = Field(5.0, ge=0)


class BreakerConfig(Strict):
    #: Open the circuit after this many failures within ``window_s``.
    failures: int = Field(5, ge=1)
    window_s: float = Field(30.0, gt=0)
    #: How long an open circuit refuses traffic before letting one probe through (half-open).
    cooldown_s: float = Field(15.0, gt=0)


class ResilienceConfig(Strict):
    retries: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    #: Give up on a stream whose first token has not come within this many seconds (then fall back).
    ttft_timeout_s: float | None = Field(None, gt=0)


class CacheConfig(Strict):
    """Exact response cache for one workload (opt-in)."""

    ttl_s: float = Field(300.0, gt=0)
    max_entries: int = Field(10_000, ge=1)
    #: ``memory`` (this process) or ``redis`` (shared by every replica; needs ``redis.url``).
    backend: Literal["memory", "redis"] = "memory"


class RedisConfig(Strict):
    """Shared state of a scaled-out gateway (several replicas behind a load balancer)."""

    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://.+")

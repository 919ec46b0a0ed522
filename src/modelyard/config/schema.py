"""The typed configuration: one YAML file, validated strictly at start-up.

Unknown keys are rejected everywhere (``extra="forbid"``), so a typo fails start-up instead of silently
doing nothing. Cross-references (a model's provider, a workload's model) are checked in
:meth:`Config.check_references` so the error names the path to fix and the allowed values.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modelyard.config.console import ConsoleConfig
from modelyard.config.governance import EACH, GovernanceConfig
from modelyard.config.kinds import KINDS, Hosting, ProviderKind
from modelyard.config.metrics import MetricsConfig
from modelyard.config.routing import (
    CacheConfig,
    DataClass,
    PolicyConfig,
    RedisConfig,
    ResilienceConfig,
    RouteConfig,
)
from modelyard.config.server_limits import ServerLimitsConfig
from modelyard.config.strict import Strict
from modelyard.config.tracing import TracingConfig

#: Self-hosted servers that speak OpenAI's format but differ in details; see providers/openai_compatible.py.
ServerProfile = Literal["generic", "vllm", "ollama", "tgi", "llamacpp"]
ModelKind = Literal["chat", "embedding", "rerank"]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")]


class Timeouts(Strict):
    """Seconds. ``connect``: TCP+TLS; ``read``: between bytes; ``total``: the whole call."""

    connect: float = Field(5.0, gt=0)
    read: float = Field(120.0, gt=0)
    total: float = Field(600.0, gt=0)


class ProviderConfig(Strict):
    kind: ProviderKind
    #: Where the provider listens. Only config sets it: requests can never redirect the gateway.
    base_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    #: The name of the environment variable holding the API key; the key itself never goes in config.
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    profile: ServerProfile = "generic"
    timeouts: Timeouts = Timeouts()
    #: Connections kept open to this provider.
    max_connections: int = Field(256, ge=1, le=10_000)
    #: Anthropic's ``anthropic-version`` header.
    api_version: str | None = None
    #: Defaults by kind: ``openai_compatible`` and ``local`` are self-hosted, the vendors' APIs external.
    #: Say ``external`` for a managed open-model API reached through ``openai_compatible``.
    hosting: Hosting | None = None

    @property
    def resolved_hosting(self) -> Hosting:
        if self.hosting is not None:
            return self.hosting
        return KINDS[self.kind].hosting

    @model_validator(mode="after")
    def _needs_base_url(self) -> ProviderConfig:
        wire = KINDS[self.kind].wire
        if wire and self.base_url is None:
            raise ValueError(f"base_url is required for kind '{self.kind}'")
        if not wire and self.base_url is not None:
            raise ValueError(f"kind '{self.kind}' runs in-process and takes no base_url")
        return self


class ModelConfig(Strict):
    provider: str
    #: The model name the provider knows; defaults to the public name.
    upstream_model: str | None = None
    kind: ModelKind = "chat"
    #: The price catalog entry to bill with, when it differs from the upstream model name.
    price_as: str | None = None


class WorkloadConfig(Strict):
    data_class: DataClass = "internal"
    #: The model used when a request names none.
    model: str | None = None
    #: Store prompt and completion text in the ledger. Off by default: the ledger holds metadata only.
    log_content: bool = False
    description: str | None = None
    #: Exact response cache for this workload; off unless set.
    cache: CacheConfig | None = None


class LedgerConfig(Strict):
    #: ``sqlite:///path.db`` (embedded default) or ``postgresql://...`` (scaled out).
    url: str = Field("sqlite:///modelyard.db", pattern=r"^(sqlite:///.+|postgres(ql)?://.+)$")
    #: Append-only spool that keeps answered requests' rows across a crash; defaults beside the database.
    spool_dir: str | None = None
    flush_interval_ms: int = Field(200, ge=10, le=60_000)
    batch_size: int = Field(500, ge=1, le=100_000)
    #: Who inserts the rows: a process of its own (the default; no database work in the gateway's process)
    #: or a thread of the gateway's (one process fewer; costs the gateway's tail latency under load).
    writer: Literal["process", "thread"] = "process"


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: Requests larger than this get 413.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    #: JSON bodies nested deeper than this get 400. Below the encoder's own limit (orjson refuses 254
    #: levels when the body is forwarded or logged) with room for the levels a translation adds.
    max_json_depth: int = Field(128, ge=8, le=200)
    #: The workload of a request that names none; unset means such requests are refused.
    default_workload: str | None = None
    #: The HTTP server's connection cap, head and URL limits and timeouts (docs/security.md).
    limits: ServerLimitsConfig = ServerLimitsConfig()


class ApiKeyConfig(Strict):
    """A client key of the gateway. Only its SHA-256 is stored: ``modelyard keys new`` makes one."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str
    #: Workloads this key may use; empty means any.
    workloads: tuple[str, ...] = ()
    #: The least strict data class this key's requests carry (tightens the workload's, never loosens).
    data_class: DataClass | None = None


class AuthConfig(Strict):
    #: Refuse requests without a valid key. With keys but ``required: false``, anonymous calls pass and
    #: keyed calls are attributed to their tenant.
    required: bool = False
    keys: dict[Name, ApiKeyConfig] = Field(default_factory=dict)
    #: With ``required: true``, ``/metrics`` needs a key like every other route (Prometheus sends one with
    #: ``authorization: {credentials: …}`` in its scrape config); ``true`` opens it to anyone who can reach
    #: the gateway, for a scraper that cannot send one. Its labels are config names and status codes only.
    public_metrics: bool = False

    @model_validator(mode="after")
    def _keys_if_required(self) -> AuthConfig:
        hashes = [k.sha256 for k in self.keys.values()]
        if len(hashes) != len(set(hashes)):
            raise ValueError("auth.keys: two keys have the same sha256")
        return self


class CatalogConfig(Strict):
    #: Extra price files layered over the bundled catalog: modelyard YAML or LiteLLM's
    #: ``model_prices_and_context_window.json``.
    price_files: tuple[str, ...] = ()


class Config(Strict):
    providers: dict[Name, ProviderConfig]
    models: dict[Name, ModelConfig]
    workloads: dict[Name, WorkloadConfig] = Field(default_factory=dict)
    ledger: LedgerConfig = LedgerConfig()
    server: ServerConfig = ServerConfig()
    catalog: CatalogConfig = CatalogConfig()
    #: Virtual model names served by several targets (fallback, load balance, cascade, shadow).
    routes: dict[Name, RouteConfig] = Field(default_factory=dict)
    policy: PolicyConfig = PolicyConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    auth: AuthConfig = AuthConfig()
    #: Shared state for scaled-out deployments (the response cache with ``backend: redis``).
    redis: RedisConfig | None = None
    #: Budgets, rate limits, workload caps, alerts and runtime keys (issue 15). Absent: none of them, and
    #: no budget store is opened.
    governance: GovernanceConfig | None = None
    #: OpenTelemetry traces of requests, exported by OTLP (issue 18); off unless ``enabled: true``.
    tracing: TracingConfig = TracingConfig()
    #: The browser console at ``/console`` (issue 18): where the latest decision report is.
    console: ConsoleConfig = ConsoleConfig()
    #: The series of ``/metrics``, also pushed by OTLP when ``metrics.otlp.enabled`` (issue 18).
    metrics: MetricsConfig = MetricsConfig()

    @model_validator(mode="after")
    def check_references(self) -> Config:
        providers = sorted(self.providers)
        for name, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{name}.provider: unknown provider '{model.provider}'; allowed: {', '.join(providers)}"
                )
            kind = self.providers[model.provider].kind
            if KINDS[kind].embeddings_only and model.kind != "embedding":
                raise ValueError(f"models.{name}.kind: provider kind '{kind}' serves embeddings only")
            if KINDS[kind].rerank_only and model.kind != "rerank":
                raise ValueError(
                    f"models.{name}.kind: provider kind '{kind}' serves rerank only; set 'kind: rerank'"
                )
            if model.kind == "rerank" and not KINDS[kind].reranks:
                rerankers = ", ".join(k for k, spec in KINDS.items() if spec.rerank_only)
                raise ValueError(
                    f"models.{name}.kind: rerank models are served by openai_compatible providers"
                    f" (vLLM, TEI, Infinity: POST /rerank) or the rerank APIs ({rerankers});"
                    f" provider '{model.provider}' is {kind}"
                )
        self._check_routes()
        for name, workload in self.workloads.items():
            if workload.cache is not None and workload.cache.backend == "redis" and self.redis is None:
                raise ValueError(
                    f"workloads.{name}.cache.backend: 'redis' needs a top-level redis: {{url: ...}}"
                )
        for key_id, key in self.auth.keys.items():
            for allowed_workload in key.workloads:
                if allowed_workload not in self.workloads:
                    raise ValueError(
                        f"auth.keys.{key_id}.workloads: unknown workload '{allowed_workload}'; "
                        f"allowed: {', '.join(sorted(self.workloads))}"
                    )
        models = sorted([*self.models, *self.routes])
        for name, workload in self.workloads.items():
            if workload.model is not None and workload.model not in models:
                raise ValueError(
                    f"workloads.{name}.model: unknown model or route '{workload.model}'; allowed: {', '.join(models)}"
                )
        if self.auth.required and not self.auth.keys and self.governance is None:
            raise ValueError(
                "auth.required is true but auth.keys is empty: create one with `modelyard keys new`,"
                " or add a governance: section to use keys made with `modelyard keys create`"
            )
        self._check_governance()
        default = self.server.default_workload
        if default is not None and default not in self.workloads:
            raise ValueError(
                f"server.default_workload: unknown workload '{default}'; allowed: {', '.join(sorted(self.workloads))}"
            )
        return self

    def _check_governance(self) -> None:
        """Budgets and caps that name a workload must name one that exists (a typo would never apply)."""
        governance = self.governance
        if governance is None:
            return
        allowed = ", ".join(sorted(self.workloads)) or "(none configured)"
        for name in governance.workloads:
            if name not in self.workloads:
                raise ValueError(
                    f"governance.workloads.{name}: unknown workload '{name}'; allowed: {allowed}"
                )
        limits = [("budgets", b.name, b.scope, b.subject) for b in governance.budgets] + [
            ("rate_limits", str(i), r.scope, r.subject) for i, r in enumerate(governance.rate_limits)
        ]
        for section, name, scope, subject in limits:
            if scope == "workload" and subject != EACH and subject not in self.workloads:
                raise ValueError(
                    f"governance.{section}.{name}.subject: unknown workload '{subject}'; allowed: {allowed}"
                )

    def _check_routes(self) -> None:
        models = sorted(self.models)
        for name, route in self.routes.items():
            if name in self.models:
                raise ValueError(f"routes.{name}: a route cannot share its name with a model")
            named = [(f"targets[{i}].model", t.model) for i, t in enumerate(route.targets)]
            if route.shadow is not None:
                named.append(("shadow.model", route.shadow.model))
            named += [(f"validators[{i}].model", v.model) for i, v in enumerate(route.validators) if v.model]
            for where, model in named:
                if model not in self.models:
                    raise ValueError(
                        f"routes.{name}.{where}: unknown model '{model}'; allowed: {', '.join(models)}"
                    )
        for data_class, policy in self.policy.data_classes.items():
            for entry in policy.allow:
                if entry not in ("any", "self_hosted", "external") and entry not in self.providers:
                    allowed = ", ".join(["any", "self_hosted", "external", *sorted(self.providers)])
                    raise ValueError(
                        f"policy.data_classes.{data_class}.allow: unknown entry '{entry}'; allowed: {allowed}"
                    )

    def upstream_model(self, public_name: str) -> str:
        model = self.models[public_name]
        return model.upstream_model or public_name

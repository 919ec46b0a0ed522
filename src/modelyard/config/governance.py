"""The ``governance:`` section of the YAML config (budgets, rate limits, caps, alerts; issue 15): strict
models the root :class:`~modelyard.config.schema.Config` holds, read by :mod:`modelyard.governance`.

Shape (every field optional except what a budget needs)::

    governance:
      store: {kind: sqlite, path: .modelyard/governance.db}   # or {kind: postgres, url: ...} / {kind: redis, url: ...}
      reservation_ttl_s: 600        # a reservation a crashed worker left is swept after this
      on_expiry: release            # or charge: count an expired reservation as spent
      unpriced: refuse              # or fixed (reserve and charge unpriced_usd) or skip_usd (token budgets only)
      unpriced_usd: "0.05"
      input_estimate: bound         # or approx (UTF-8 bytes / 4); see estimate.py
      default_max_output_tokens: 4096
      key_cache_ttl_s: 5            # a revoked key stops working everywhere within this
      workloads: {chat: {max_output_tokens: 1024, max_input_tokens: 32000, bound_output: true}}
      budgets:
        - {name: team-daily, scope: tenant, subject: "*", unit: usd, limit: "25", window: {kind: day, timezone: Europe/Paris}}
      rate_limits:
        - {scope: key, subject: "*", requests_per_minute: 600, tokens_per_minute: 200000}
      alerts: {thresholds: [50, 80, 100], webhook_url: "http://alerts.internal/hook"}
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from modelyard.config.strict import Strict

Unit = Literal["usd", "tokens", "requests"]
Scope = Literal["tenant", "key", "workload"]

#: ``subject: "*"`` in a budget means "each tenant / key / workload gets its own counter".
EACH = "*"

#: Counters of USD budgets are in pico-USD, the ledger's unit (``catalog.prices.to_pico`` is the same).
PICO_PER_USD = Decimal(10) ** 12

#: The largest limit a counter holds: every budget store keeps counters as 64-bit signed integers
#: (SQLite INTEGER, PostgreSQL BIGINT); a larger one failed every request it applied to with a 500.
MAX_COUNTER = 2**63 - 1
#: The largest USD limit: :data:`MAX_COUNTER` pico-USD, in whole dollars (about 9.2 million).
MAX_USD = Decimal(MAX_COUNTER // 10**12)

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")]


def known_zone(value: str) -> str:
    """``value`` when it names an IANA time zone; else a ValueError saying what to write instead."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise ValueError(
            f"unknown timezone {value!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None
    return value


class WindowConfig(Strict):
    """``day`` and ``month`` start at local midnight in ``timezone`` (IANA name; DST days are 23 or 25 h);
    ``period`` is ``seconds`` long, counted from ``anchor`` (e.g. a sprint, a billing cycle, a minute)."""

    kind: Literal["day", "month", "period"]
    timezone: str = "UTC"
    seconds: int | None = Field(default=None, ge=1)
    anchor: datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @model_validator(mode="after")
    def _period_needs_length(self) -> WindowConfig:
        if self.kind == "period" and self.seconds is None:
            raise ValueError(
                "a 'period' window needs 'seconds' (and optionally 'anchor', default 1970-01-01 UTC)"
            )
        if self.kind != "period" and (self.seconds is not None or self.anchor is not None):
            raise ValueError(f"'seconds' and 'anchor' belong to 'period' windows, not {self.kind!r}")
        if self.anchor is not None and self.anchor.tzinfo is None:
            raise ValueError("'anchor' needs a UTC offset, e.g. 2026-01-05T09:00:00+01:00")
        return self


class BudgetConfig(Strict):
    name: Name
    scope: Scope
    #: One tenant / key id / workload, or ``"*"``: each one gets its own counter with this limit.
    subject: str = EACH
    unit: Unit
    #: USD as a decimal string (``"25"``, ``"0.50"``), or a whole number of tokens or requests.
    limit: Decimal = Field(ge=0)
    window: WindowConfig
    #: ``hard`` refuses a request the budget has no room for; ``soft`` only counts and alerts.
    mode: Literal["hard", "soft"] = "hard"

    @model_validator(mode="after")
    def _whole_counts(self) -> BudgetConfig:
        if self.unit != "usd" and self.limit != self.limit.to_integral_value():
            raise ValueError(f"a {self.unit} budget's limit is a whole number, got {self.limit}")
        if self.limit > (MAX_USD if self.unit == "usd" else MAX_COUNTER):
            raise ValueError(
                f"a {self.unit} budget's limit is at most {MAX_USD if self.unit == 'usd' else MAX_COUNTER}"
                f" (a 64-bit counter), got {self.limit}"
            )
        return self

    @property
    def limit_units(self) -> int:
        """The limit in counter units: pico-USD, tokens or requests."""
        return int((self.limit * PICO_PER_USD).to_integral_value()) if self.unit == "usd" else int(self.limit)


class RateLimitConfig(Strict):
    scope: Scope
    subject: str = EACH
    requests_per_minute: int | None = Field(default=None, ge=1, le=MAX_COUNTER)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=MAX_COUNTER)

    @model_validator(mode="after")
    def _something(self) -> RateLimitConfig:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_minute, tokens_per_minute or both")
        return self

    def as_budgets(self, name: str) -> tuple[BudgetConfig, ...]:
        """The limit as hard budgets over fixed 60-second windows, named ``rate:<name>:rpm`` / ``:tpm``:
        held in the budget store, so exact across every process and replica, checked in the same round
        trip as the budgets, and a token reservation settles to the tokens really used."""
        out = []
        for suffix, unit, limit in (
            ("rpm", "requests", self.requests_per_minute),
            ("tpm", "tokens", self.tokens_per_minute),
        ):
            if limit is not None:
                out.append(
                    BudgetConfig(
                        name=f"{RATE_PREFIX}{name}:{suffix}",
                        scope=self.scope,
                        subject=self.subject,
                        unit=unit,
                        limit=Decimal(limit),
                        window=WindowConfig(kind="period", seconds=60),
                    )
                )
        return tuple(out)


#: Budgets named with this prefix are rate limits: a refusal is a 429 rate_limit_exceeded with Retry-After.
RATE_PREFIX = "rate:"


class WorkloadCaps(Strict):
    """The seeds' "hard token budgets": a request above them is refused before any reservation."""

    max_output_tokens: int | None = Field(default=None, ge=1)
    max_input_tokens: int | None = Field(default=None, ge=1)
    #: A request that sets no ``max_tokens`` is sent the bound its reservation assumed (this cap, else
    #: ``default_max_output_tokens``), so its answer cannot cost more than was held. ``false``: send
    #: nothing and let the model's own limit apply (long reasoning is never cut at the default); such
    #: reservations are flagged ``unbounded`` and a budget may then be passed by more than one request.
    bound_output: bool = True


class StoreConfig(Strict):
    #: ``mapped``: counters in a file every ``--workers`` process maps (``<path>-counters``, started from
    #: the SQLite store at ``path`` if there is one; alert claims stay in that file). ``sqlite``: counters
    #: in the SQLite file at ``path`` (a transaction per reservation and per settlement). Both are exact
    #: across the processes of one machine; ``postgres`` and ``redis`` across machines.
    kind: Literal["memory", "sqlite", "mapped", "postgres", "redis"] = "mapped"
    path: str = ".modelyard/governance.db"
    url: str | None = None

    @model_validator(mode="after")
    def _url_for_servers(self) -> StoreConfig:
        if self.kind in ("postgres", "redis") and not self.url:
            raise ValueError(f"store kind {self.kind!r} needs 'url' (postgresql://... or redis://...)")
        return self


class AlertConfig(Strict):
    thresholds: tuple[int, ...] = (50, 80, 100)
    webhook_url: str | None = None
    webhook_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(t <= 0 or t > 1000 for t in value):
            raise ValueError("alert thresholds are percentages of the limit, 1..1000")
        return tuple(sorted(set(value)))


class GovernanceConfig(Strict):
    store: StoreConfig = StoreConfig()
    reservation_ttl_s: float = Field(default=600.0, gt=0)
    on_expiry: Literal["release", "charge"] = "release"
    unpriced: Literal["refuse", "fixed", "skip_usd"] = "refuse"
    unpriced_usd: Decimal = Field(default=Decimal("0.05"), ge=0)
    input_estimate: Literal["bound", "approx"] = "bound"
    default_max_output_tokens: int = Field(default=4096, ge=1)
    key_cache_ttl_s: float = Field(default=5.0, gt=0, le=60)
    workloads: dict[Name, WorkloadCaps] = Field(default_factory=dict)
    budgets: tuple[BudgetConfig, ...] = ()
    rate_limits: tuple[RateLimitConfig, ...] = ()
    #: ``store``: rate limits are fixed 60 s windows in the budget store (exact across processes and
    #: replicas, one round trip with the budgets). ``limits``: the ``limits`` package's sliding-window
    #: counters (ratelimit.py), in memory (one process) or Redis.
    rate_limits_in: Literal["store", "limits"] = "store"
    alerts: AlertConfig = AlertConfig()
    #: The environment variable holding the admin API's key (``/admin/keys``); unset: no admin API.
    admin_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def rate_limit_budgets(self) -> tuple[BudgetConfig, ...]:
        """``rate_limits`` as budgets when they live in the budget store; none otherwise. (Not cached
        here: ``model_copy`` would carry a cached value over to a copy with other limits.)"""
        if self.rate_limits_in != "store":
            return ()
        return tuple(b for i, limit in enumerate(self.rate_limits) for b in limit.as_budgets(str(i)))

    @model_validator(mode="after")
    def _unique_budget_names(self) -> GovernanceConfig:
        names = [b.name for b in self.budgets]
        reserved = sorted(n for n in names if n.startswith(("key-", RATE_PREFIX)))
        if reserved:
            raise ValueError(
                f"budget names starting with 'key-' or '{RATE_PREFIX}' belong to runtime keys' limits and"
                f" to rate limits: rename {reserved}"
            )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique; repeated: {dupes}")
        return self

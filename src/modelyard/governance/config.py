"""The ``governance:`` config section lives in :mod:`modelyard.config.governance` (the root config holds
it, and config sits below this package); the engine's modules import it from here."""

from modelyard.config.governance import (
    EACH,
    MAX_COUNTER,
    MAX_USD,
    RATE_PREFIX,
    AlertConfig,
    BudgetConfig,
    GovernanceConfig,
    RateLimitConfig,
    Scope,
    StoreConfig,
    Unit,
    WindowConfig,
    WorkloadCaps,
    known_zone,
)

__all__ = [
    "EACH",
    "MAX_COUNTER",
    "MAX_USD",
    "RATE_PREFIX",
    "AlertConfig",
    "BudgetConfig",
    "GovernanceConfig",
    "RateLimitConfig",
    "Scope",
    "StoreConfig",
    "Unit",
    "WindowConfig",
    "WorkloadCaps",
    "known_zone",
]

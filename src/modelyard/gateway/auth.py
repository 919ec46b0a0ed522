"""Client keys: who is calling, for which tenant, with which limits.

Keys are random tokens shown once; the config keeps only their SHA-256, so a leaked config leaks no key.
A presented key is hashed and looked up; a tenant's key can be limited to some workloads and can carry a
minimum data class (it tightens what the workload says, like the header does).

Keys come from the config's ``auth.keys`` and, with a ``governance:`` section, from the ledger database
(``modelyard keys create``), looked up through the :class:`~modelyard.governance.key_cache.KeyCache`: a
key revoked or rotated there stops working within ``governance.key_cache_ttl_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.config.schema import AuthConfig
from modelyard.errors import AuthenticationFailed, PolicyDenied
from modelyard.governance.config import BudgetConfig
from modelyard.governance.key_cache import KeyCache
from modelyard.governance.keys import KEY_PREFIX, KeyRecord, hash_key, new_key

__all__ = ["KEY_PREFIX", "Caller", "KeyRing", "hash_key", "new_key"]


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    tenant: str
    workloads: tuple[str, ...]
    data_class: str | None
    #: A runtime key's own limits, as budgets on its own counters (none for a config key).
    budgets: tuple[BudgetConfig, ...] = ()

    def check_workload(self, workload: str | None) -> None:
        if self.workloads and workload not in self.workloads:
            raise PolicyDenied(
                f"this key may use workloads {', '.join(self.workloads)}, not {workload!r}",
                code="workload_not_allowed",
                param="metadata.workload",
            )


class KeyRing:
    def __init__(self, config: AuthConfig, runtime: KeyCache | None = None) -> None:
        self.required = config.required
        self._by_hash = {
            key.sha256: Caller(key_id, key.tenant, key.workloads, key.data_class)
            for key_id, key in config.keys.items()
        }
        self._runtime = runtime
        #: A runtime key's Caller, built once per version of its record (its budgets are pydantic models).
        self._callers: dict[KeyRecord, Caller] = {}
        #: Whether calls are checked for a key at all (config keys or a runtime key store): fixed at start-up.
        self.enabled = bool(self._by_hash) or self._runtime is not None

    def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller behind an ``Authorization: Bearer`` header; None for an anonymous call allowed here."""
        if not self.enabled:
            return None
        if authorization is None:
            if self.required:
                raise AuthenticationFailed(
                    "this gateway needs an API key: send 'Authorization: Bearer <key>'",
                    code="missing_api_key",
                )
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if not self.required and not token.startswith(KEY_PREFIX):
            return None  # SDKs always send some key; only a modelyard key has to be valid here
        if scheme.lower() != "bearer":
            raise AuthenticationFailed("the API key is not valid for this gateway")
        caller = self._by_hash.get(hash_key(token))
        if caller is None and self._runtime is not None:
            caller = self._runtime_caller(token)
        if caller is None:
            raise AuthenticationFailed("the API key is not valid for this gateway")
        return caller

    def _runtime_caller(self, token: str) -> Caller | None:
        assert self._runtime is not None
        record = self._runtime.lookup(token)
        if record is None:
            return None
        caller = self._callers.get(record)
        if caller is None:
            if len(self._callers) > 10_000:
                self._callers.clear()  # old versions of rotated or re-limited keys
            caller = self._callers[record] = Caller(
                record.key_id,
                record.tenant,
                record.workloads,
                record.data_class,
                record.limits.budgets(record.key_id),
            )
        return caller

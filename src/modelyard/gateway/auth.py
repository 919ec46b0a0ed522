"""Client keys: who is calling, for which tenant, with which limits.

Keys are random tokens shown once; the config keeps only their SHA-256, so a leaked config leaks no key.
A presented key is hashed and looked up; a tenant's key can be limited to some workloads and can carry a
minimum data class (it tightens what the workload says, like the header does).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from modelyard.config.schema import AuthConfig
from modelyard.errors import AuthenticationFailed, PolicyDenied

KEY_PREFIX = "myd-"


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    tenant: str
    workloads: tuple[str, ...]
    data_class: str | None

    def check_workload(self, workload: str | None) -> None:
        if self.workloads and workload not in self.workloads:
            raise PolicyDenied(
                f"this key may use workloads {', '.join(self.workloads)}, not {workload!r}",
                code="workload_not_allowed",
                param="metadata.workload",
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, config: AuthConfig) -> None:
        self.required = config.required
        self._by_hash = {
            key.sha256: Caller(key_id, key.tenant, key.workloads, key.data_class)
            for key_id, key in config.keys.items()
        }

    @property
    def enabled(self) -> bool:
        return bool(self._by_hash)

    def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller behind an ``Authorization: Bearer`` header; None for an anonymous call allowed here."""
        if not self._by_hash:
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
        caller = self._by_hash.get(hash_key(token)) if scheme.lower() == "bearer" else None
        if caller is None:
            raise AuthenticationFailed("the API key is not valid for this gateway")
        return caller

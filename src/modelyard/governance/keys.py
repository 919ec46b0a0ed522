"""Runtime API keys in the ledger database (table ``api_keys``, migration 0003): create (the key is shown
once), list, revoke, rotate, set limits. Only the SHA-256 of a key is stored, as in the config's
``auth.keys``; both kinds of key keep working side by side.

A gateway process looks keys up through :class:`~modelyard.governance.key_cache.KeyCache`, a snapshot of
the active keys trusted for ``governance.key_cache_ttl_s``: a revocation or rotation made by any process,
on any replica sharing the database, stops the old key everywhere within that bound.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from modelyard.governance.config import (
    MAX_COUNTER,
    MAX_USD,
    BudgetConfig,
    RateLimitConfig,
    WindowConfig,
    known_zone,
)
from modelyard.ledger.store import open_store, sqlite_path

#: The same prefix and hash as ``modelyard.gateway.auth`` (tests hold them equal): a key made here
#: authenticates like one written in the config.
KEY_PREFIX = "myd-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyLimits(BaseModel):
    """What one key may spend and how fast; each unset field means "no limit of that kind on the key"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Checked here, when the admin API stores them, with the bounds the budgets they become check: a key
    # stored with a limit past a 64-bit counter or an unknown zone failed every request it made with a 500.
    usd_per_day: Decimal | None = Field(default=None, ge=0, le=MAX_USD)
    usd_per_month: Decimal | None = Field(default=None, ge=0, le=MAX_USD)
    tokens_per_day: int | None = Field(default=None, ge=0, le=MAX_COUNTER)
    tokens_per_month: int | None = Field(default=None, ge=0, le=MAX_COUNTER)
    requests_per_minute: int | None = Field(default=None, ge=1, le=MAX_COUNTER)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=MAX_COUNTER)
    #: Calendar days and months of these limits start at midnight in this zone.
    timezone: Annotated[str, AfterValidator(known_zone)] = "UTC"

    def budgets(self, key_id: str) -> tuple[BudgetConfig, ...]:
        """The key's limits as hard budgets on its own counters, drawn on beside the config's budgets
        (its per-minute limits as 60-second rate-limit budgets, see ``RateLimitConfig.as_budgets``)."""
        out = []
        for field, unit, kind in (
            ("usd_per_day", "usd", "day"),
            ("usd_per_month", "usd", "month"),
            ("tokens_per_day", "tokens", "day"),
            ("tokens_per_month", "tokens", "month"),
        ):
            limit = getattr(self, field)
            if limit is not None:
                out.append(
                    BudgetConfig(
                        name=f"key-{field.replace('_', '-')}",
                        scope="key",
                        subject=key_id,
                        unit=unit,
                        limit=Decimal(limit),
                        window=WindowConfig(kind=kind, timezone=self.timezone),
                    )
                )
        limit = self.rate_limit(key_id)
        return tuple(out) + (limit.as_budgets(f"key-{key_id}") if limit else ())

    def rate_limit(self, key_id: str) -> RateLimitConfig | None:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            return None
        return RateLimitConfig(
            scope="key",
            subject=key_id,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant: str
    workloads: tuple[str, ...]
    data_class: str | None
    limits: KeyLimits
    created_at: float
    revoked_at: float | None
    #: The first 12 hex digits of the SHA-256 the key had before its last rotation.
    rotated_from: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        """The record as the admin API and the console show it: never the secret, nor its hash."""
        return {
            "id": self.key_id,
            "tenant": self.tenant,
            "workloads": list(self.workloads),
            "data_class": self.data_class,
            "limits": self.limits.model_dump(mode="json", exclude_none=True),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


class UnknownKey(LookupError):
    """An admin operation named a key that does not exist (or is already revoked)."""


_COLUMNS = "key_id, tenant, workloads, data_class, limits, created_at, revoked_at, rotated_from"


class KeyStore:
    """Keys in the ledger database named by ``url`` (``sqlite:///path.db`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        open_store(url).close()  # applies migration 0003 with the ledger's own locking
        self._lock = threading.Lock()
        #: Called after every write made through this store (the caches of this process forget).
        self._on_change: list[Callable[[], None]] = []
        self._sqlite = url.startswith("sqlite:///")
        if self._sqlite:
            import sqlite3

            self._conn: Any = sqlite3.connect(
                sqlite_path(url), isolation_level=None, check_same_thread=False, timeout=10.0
            )
        else:
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=5)

    def create(
        self,
        key_id: str,
        tenant: str,
        *,
        workloads: tuple[str, ...] = (),
        data_class: str | None = None,
        limits: KeyLimits | None = None,
        now: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key: its record and the key itself, which nothing stores (show it once)."""
        if self.get(key_id) is not None:
            raise ValueError(f"a key named {key_id!r} exists already: pick another --id, or rotate it")
        key = new_key()
        record = KeyRecord(
            key_id, tenant, workloads, data_class, limits or KeyLimits(), now or time.time(), None
        )
        self._run(
            f"INSERT INTO api_keys ({_COLUMNS}, sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (*_values(record), hash_key(key)),
        )
        self._changed()
        return record, key

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        return record_of(rows[0]) if rows else None

    def active_records(self) -> list[tuple[Any, ...]]:
        """Every active key as ``(sha256, *record columns)``: the key cache's snapshot, read whole."""
        return self._run(f"SELECT sha256, {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL", ())

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each write made through this store."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [
            record_of(r) for r in self._run(f"SELECT {_COLUMNS} FROM api_keys{where} ORDER BY key_id", ())
        ]

    def revoke(self, key_id: str, *, now: float | None = None) -> KeyRecord:
        rows = self._run(
            f"UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL RETURNING {_COLUMNS}",
            (now or time.time(), key_id),
        )
        self._changed()
        if not rows:
            raise UnknownKey(f"no active key {key_id!r}: `modelyard keys list` shows the keys")
        return record_of(rows[0])

    def rotate(self, key_id: str) -> tuple[KeyRecord, str]:
        """A new secret for the same key id, tenant and limits; the old secret stops working."""
        key = new_key()
        rows = self._run(
            f"UPDATE api_keys SET sha256 = %s, rotated_from = sha256 WHERE key_id = %s AND revoked_at IS NULL"
            f" RETURNING {_COLUMNS}",
            (hash_key(key), key_id),
        )
        self._changed()
        if not rows:
            raise UnknownKey(f"no active key {key_id!r} to rotate: `modelyard keys list` shows the keys")
        return record_of(rows[0]), key

    def set_limits(self, key_id: str, limits: KeyLimits) -> KeyRecord:
        rows = self._run(
            f"UPDATE api_keys SET limits = %s WHERE key_id = %s RETURNING {_COLUMNS}",
            (limits.model_dump_json(exclude_none=True), key_id),
        )
        self._changed()
        if not rows:
            raise UnknownKey(f"no key {key_id!r}: `modelyard keys list --all` shows the keys")
        return record_of(rows[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._sqlite:
            sql = sql.replace("%s", "?")
        with self._lock:
            cursor = self._conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []


def _values(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.key_id,
        record.tenant,
        orjson.dumps(list(record.workloads)).decode(),
        record.data_class,
        record.limits.model_dump_json(exclude_none=True),
        record.created_at,
        record.revoked_at,
        record.rotated_from,
    )


def record_of(row: tuple[Any, ...]) -> KeyRecord:
    key_id, tenant, workloads, data_class, limits, created_at, revoked_at, rotated_from = row
    return KeyRecord(
        str(key_id),
        str(tenant),
        tuple(orjson.loads(workloads)),
        data_class,
        KeyLimits.model_validate_json(limits),
        float(created_at),
        None if revoked_at is None else float(revoked_at),
        None if rotated_from is None else str(rotated_from)[:12],  # the old hash, shortened: for audit
    )

"""The exact response cache: keys, and a TTL store per workload.

A key is the SHA-256 of the normalised request — route, messages and every generation parameter — and
of its tenant, workload and data class, so an entry is never shared across tenants or data classes.
Parameters that do not change the answer (``stream``, ``stream_options``, ``user``, ``metadata``) are left
out, so a streamed request and a plain one share an entry. Expiry and size bounds come from cachetools.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from cachetools import TTLCache

from modelyard.config.routing import CacheConfig
from modelyard.providers.base import JSON, Usage

_IGNORED = frozenset({"stream", "stream_options", "user", "metadata"})


def cache_key(route: str, body: JSON, *, workload: str | None, data_class: str, tenant: str | None) -> str:
    normalised = {k: v for k, v in body.items() if k not in _IGNORED}
    normalised["model"] = route
    material = orjson.dumps(
        {"request": normalised, "workload": workload, "data_class": data_class, "tenant": tenant},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    body: JSON
    usage: Usage | None
    #: What the original call cost (pico-USD): a hit saves this much.
    cost_pico_usd: int | None
    served_by: str


class ResponseCache:
    """One bounded TTL cache per workload that opted in."""

    def __init__(self, configs: dict[str, CacheConfig]) -> None:
        self._caches: dict[str, TTLCache[str, CachedAnswer]] = {
            workload: TTLCache(maxsize=c.max_entries, ttl=c.ttl_s) for workload, c in configs.items()
        }

    def enabled(self, workload: str | None) -> bool:
        return workload is not None and workload in self._caches

    def get(self, workload: str | None, key: str) -> CachedAnswer | None:
        if workload is None or workload not in self._caches:
            return None
        return self._caches[workload].get(key)

    def put(self, workload: str | None, key: str, answer: CachedAnswer) -> None:
        if workload is not None and workload in self._caches:
            self._caches[workload][key] = answer

"""The exact response cache: keys, and a TTL store per workload — in process, or in Redis when the
gateway is scaled out to several replicas that should share answers.

A key is the SHA-256 of the normalised request — route, messages and every generation parameter — and
of its tenant, workload and data class, so an entry is never shared across tenants or data classes.
Parameters that do not change the answer (``stream``, ``stream_options``, ``user``, ``metadata``) are left
out, so a streamed request and a plain one share an entry. In process, expiry and size bounds come from
cachetools; in Redis, entries are written with their TTL (``SET ... EX``) and Redis evicts them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from cachetools import TTLCache

from modelyard.config.routing import CacheConfig
from modelyard.providers.base import JSON, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis

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


def encode_answer(answer: CachedAnswer) -> bytes:
    usage = answer.usage
    return orjson.dumps(
        {
            "body": answer.body,
            "usage": None
            if usage is None
            else [
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            ],
            "cost": answer.cost_pico_usd,
            "by": answer.served_by,
        }
    )


def decode_answer(raw: bytes | str) -> CachedAnswer:
    data = orjson.loads(raw)
    usage = Usage(*data["usage"]) if data["usage"] is not None else None
    return CachedAnswer(data["body"], usage, data["cost"], data["by"])


class ResponseCache:
    """One TTL cache per workload that opted in: in process, or in Redis (``backend: redis``)."""

    def __init__(self, configs: dict[str, CacheConfig], redis_url: str | None = None) -> None:
        self._configs = configs
        self._memory: dict[str, TTLCache[str, CachedAnswer]] = {
            workload: TTLCache(maxsize=c.max_entries, ttl=c.ttl_s)
            for workload, c in configs.items()
            if c.backend == "memory"
        }
        self._redis: Redis | None = None
        if redis_url is not None and any(c.backend == "redis" for c in configs.values()):
            # Imported only here: the redis client loads ~120 modules (its OpenTelemetry hooks among
            # them), start-up time and memory a gateway without a Redis cache should not pay.
            from redis.asyncio import Redis

            self._redis = Redis.from_url(redis_url)

    def enabled(self, workload: str | None) -> bool:
        return workload is not None and workload in self._configs

    async def get(self, workload: str | None, key: str) -> CachedAnswer | None:
        if workload is None or workload not in self._configs:
            return None
        memory = self._memory.get(workload)
        if memory is not None:
            return memory.get(key)
        raw = await self._client().get(_redis_key(workload, key))
        return decode_answer(raw) if raw is not None else None

    async def put(self, workload: str | None, key: str, answer: CachedAnswer) -> None:
        if workload is None or workload not in self._configs:
            return
        memory = self._memory.get(workload)
        if memory is not None:
            memory[key] = answer
            return
        ttl = max(1, round(self._configs[workload].ttl_s))
        await self._client().set(_redis_key(workload, key), encode_answer(answer), ex=ttl)

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError(
                "a redis-backed cache needs redis.url in the config"
            )  # config validation prevents it
        return self._redis

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _redis_key(workload: str, key: str) -> str:
    return f"modelyard:cache:{workload}:{key}"

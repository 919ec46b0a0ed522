"""Budget counters in Redis: every operation is one Lua script, so one round trip and atomic.

Keys (``prefix`` defaults to ``myd:gov:``): ``c:<counter>`` a hash {limit, spent, reserved} that expires
35 days after its window ends; ``r:<reservation>`` a hash {counter: "unit:amount"}; ``expiry`` a sorted
set of reservations by expiry time, which ``sweep`` walks. Standalone Redis (or one primary): the scripts
touch keys they compute, which Redis Cluster does not allow across slots.

Amounts travel as decimal strings and change only through HINCRBY (exact 64-bit integers); the
admission test compares them as Lua doubles, exact up to 2**53 pico-USD (~$9,000) and off by at most a
few pico-dollars above that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis

from modelyard.governance.model import Actual, CounterState, Reservation
from modelyard.governance.store import oversized

#: KEYS: counters..., reservation, expiry. ARGV: n, id, expires_at, then per line: unit, amount, limit,
#: hard, ttl. Refuses with the 1-based index of the first hard line without room; else holds them all.
_RESERVE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local b = 3 + (i - 1) * 5
  if ARGV[b + 4] == '1' then
    local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
    if tonumber(v[1] or '0') + tonumber(v[2] or '0') + tonumber(ARGV[b + 2]) > tonumber(ARGV[b + 3]) then
      return i
    end
  end
end
for i = 1, n do
  local b = 3 + (i - 1) * 5
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[b + 2])
  redis.call('HSET', KEYS[i], 'limit', ARGV[b + 3])
  redis.call('EXPIRE', KEYS[i], ARGV[b + 5])
  redis.call('HSET', KEYS[n + 1], KEYS[i], ARGV[b + 1] .. ':' .. ARGV[b + 2])
end
redis.call('ZADD', KEYS[n + 2], ARGV[3], ARGV[2])
return 0
"""

#: Shared by settle and sweep: drop one reservation, moving each line from reserved to spent.
#: mode 'actual' spends ARGV usd/tokens/requests; 'charge' spends what was held; 'release' spends 0.
_DROP_ONE = """
local function drop(rkey, zkey, rid, mode, usd, tokens, requests, out)
  local f = redis.call('HGETALL', rkey)
  for j = 1, #f, 2 do
    local counter = f[j]
    local unit, amount = string.match(f[j + 1], '^(%a+):(%d+)$')
    local spent = '0'
    if mode == 'charge' then spent = amount
    elseif mode == 'actual' then
      if unit == 'usd' then spent = usd elseif unit == 'tokens' then spent = tokens else spent = requests end
    end
    local reserved = redis.call('HINCRBY', counter, 'reserved', '-' .. amount)
    local total = redis.call('HINCRBY', counter, 'spent', spent)
    local limit = redis.call('HGET', counter, 'limit')
    table.insert(out, counter) table.insert(out, limit) table.insert(out, total) table.insert(out, reserved)
  end
  redis.call('DEL', rkey)
  redis.call('ZREM', zkey, rid)
end
"""

#: KEYS: reservation, expiry. ARGV: id, usd, tokens, requests.
_SETTLE = (
    _DROP_ONE
    + """
local out = {}
drop(KEYS[1], KEYS[2], ARGV[1], 'actual', ARGV[2], ARGV[3], ARGV[4], out)
return out
"""
)

#: KEYS: expiry. ARGV: now, mode, prefix, batch. Returns how many reservations it dropped.
_SWEEP = (
    _DROP_ONE
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
for _, rid in ipairs(ids) do
  drop(ARGV[3] .. 'r:' .. rid, KEYS[1], rid, ARGV[2], '0', '0', '0', {})
end
return #ids
"""
)

#: Counters outlive their window by this long, so /v1/usage can show last month's.
_RETENTION_S = 35 * 86400


class RedisBudgetStore:
    def __init__(self, url: str, *, prefix: str = "myd:gov:") -> None:
        self._redis: redis.Redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._expiry = prefix + "expiry"
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._sweep = self._redis.register_script(_SWEEP)

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        lines = reservation.lines
        keys = [self._prefix + "c:" + x.counter for x in lines]
        keys += [self._prefix + "r:" + reservation.id, self._expiry]
        args: list[Any] = [len(lines), reservation.id, repr(reservation.expires_at)]
        for x in lines:
            ttl = max(1, int(x.window.end - reservation.expires_at) + _RETENTION_S)
            args += [x.unit, str(x.amount), str(x.limit), "1" if x.hard else "0", str(ttl)]
        index = int(cast(int, self._reserve(keys=keys, args=args)))
        return None if index == 0 else index - 1

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        return [self.reserve(r) for r in reservations]  # one round trip each: the gateway never batches these

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        keys = [self._prefix + "r:" + reservation_id, self._expiry]
        args = [reservation_id, str(actual.cost_pico), str(actual.tokens), str(actual.requests)]
        return self._states(cast(list[Any], self._settle(keys=keys, args=args)))

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        """Every settle script of the batch in one pipeline: one round trip for all of them."""
        pipe = self._redis.pipeline(transaction=False)
        for rid, actual in settlements:
            keys = [self._prefix + "r:" + rid, self._expiry]
            args = [rid, str(actual.cost_pico), str(actual.tokens), str(actual.requests)]
            self._settle(keys=keys, args=args, client=pipe)
        return [self._states(cast(list[Any], flat)) for flat in pipe.execute()]

    def sweep(self, now: float, *, charge: bool = False, batch: int = 1000) -> int:
        total = 0
        while True:
            args = [repr(now), "charge" if charge else "release", self._prefix, batch]
            dropped = int(cast(int, self._sweep(keys=[self._expiry], args=args)))
            total += dropped
            if dropped < batch:
                return total

    def state(self, counter: str) -> CounterState | None:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._prefix + "c:" + counter))
        if not raw:
            return None
        return CounterState(
            counter, int(raw.get(b"limit", 0)), int(raw.get(b"spent", 0)), int(raw.get(b"reserved", 0))
        )

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        key = f"{self._prefix}a:{counter}:{threshold}"
        return bool(self._redis.set(key, repr(now), nx=True, ex=_RETENTION_S))

    def close(self) -> None:
        self._redis.close()

    def _states(self, flat: list[Any]) -> list[CounterState]:
        cut = len(self._prefix) + 2
        return [
            CounterState(flat[i].decode()[cut:], int(flat[i + 1]), int(flat[i + 2]), int(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

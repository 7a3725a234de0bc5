"""Limits decided in Redis, one Lua script per decision, so every process sees one exact state.

The script mirrors `rules.decide`: it reads every rule's state, refuses without writing anything
when one rule refuses, else writes all new states with an expiry (a GCRA state is worthless after
its TAT, a window counter after its window). Times are integer microseconds passed in by the
caller's clock; hosts are expected to keep their clocks in sync (NTP), as for any distributed limiter.

Time never runs backwards for the script: it decides at the latest time any caller has sent (kept in
one `clock` key). Callers read their clocks before their round trips, so decisions reach Redis a
little out of order (other connections, other processes); without the clamp the last request of a
burst that exactly fills a limit, stamped a few µs before one already decided, was refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from polyroute.limits.rules import Rule, Verdict
from polyroute.limits.store import LimitStoreUnavailable

# KEYS: one per rule, then the clock key. Sets `now` to the latest caller time seen (see above).
_CLOCK_LUA = """
local clock = KEYS[#KEYS]
local now = tonumber(ARGV[1])
local seen = redis.call('GET', clock)
if seen and tonumber(seen) > now then now = tonumber(seen) else
  redis.call('SET', clock, string.format('%.0f', now), 'PX', 600000)
end
"""

# ARGV: now_us, then per rule: kind ("g"|"w"), limit, period_us, interval_us, cost.
# Returns {allowed, rule index (1-based), remaining, retry_after_us, reset_after_us} as strings.
DECIDE_LUA = (
    _CLOCK_LUA
    + """
local n = #KEYS - 1
local new = {}
local best_i, best_rem, best_reset = 0, -1, 0
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local kind = ARGV[base + 1]
  local limit = tonumber(ARGV[base + 2])
  local period = tonumber(ARGV[base + 3])
  local interval = tonumber(ARGV[base + 4])
  local cost = tonumber(ARGV[base + 5])
  local stored = redis.call('GET', KEYS[i])
  if kind == 'g' then
    local tolerance = interval * limit
    local tat = now
    if stored and tonumber(stored) > now then tat = tonumber(stored) end
    local new_tat = tat + cost * interval
    if new_tat - now > tolerance then
      local rem = math.floor((tolerance - (tat - now)) / interval)
      if rem < 0 then rem = 0 end
      return {'0', tostring(i), string.format('%.0f', rem), string.format('%.0f', new_tat - tolerance - now),
              string.format('%.0f', tat - now)}
    end
    local rem = math.floor((tolerance - (new_tat - now)) / interval)
    new[i] = {new_tat, new_tat - now}
    if best_rem < 0 or rem < best_rem then best_i, best_rem, best_reset = i, rem, new_tat - now end
  else
    local used = 0
    if stored then used = tonumber(stored) end
    local reset = period - (now % period)
    if used + cost > limit then
      local rem = limit - used
      if rem < 0 then rem = 0 end
      return {'0', tostring(i), string.format('%.0f', rem), string.format('%.0f', reset), string.format('%.0f', reset)}
    end
    used = used + cost
    new[i] = {used, reset}
    if best_rem < 0 or limit - used < best_rem then best_i, best_rem, best_reset = i, limit - used, reset end
  end
end
for i = 1, n do
  local ttl_ms = math.ceil(new[i][2] / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', new[i][1]), 'PX', string.format('%.0f', ttl_ms))
end
return {'1', tostring(best_i), string.format('%.0f', best_rem), '0', string.format('%.0f', best_reset)}
"""
)

# ARGV: now_us, units, then per key its interval_us; mirrors rules.gcra_adjust.
ADJUST_LUA = (
    _CLOCK_LUA
    + """
local units = tonumber(ARGV[2])
for i = 1, #KEYS - 1 do
  local interval = tonumber(ARGV[2 + i])
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored and tonumber(stored) > now then tat = tonumber(stored) end
  local new_tat = tat + units * interval
  if new_tat <= now then
    redis.call('DEL', KEYS[i])
  else
    local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
  end
end
return 1
"""
)


class RedisLimitStore:
    """Exact across processes and hosts; raises LimitStoreUnavailable when Redis cannot answer."""

    def __init__(self, client: aioredis.Redis, prefix: str = "polyroute:limits:") -> None:
        self._client = client
        self._prefix = prefix
        self._clock_key = prefix + "clock"
        self._script: Any = client.register_script(DECIDE_LUA)
        self._adjust_script: Any = client.register_script(ADJUST_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str = "polyroute:limits:", timeout_s: float = 1.0) -> RedisLimitStore:
        # A bounded pool that waits briefly for a free connection rather than failing a burst.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=1.0, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(aioredis.Redis(connection_pool=pool), prefix)

    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        if not rules:
            return Verdict(True, None, 0, 0, 0)
        keys = [*(self._prefix + rule.store_key(now_us) for rule in rules), self._clock_key]
        args: list[str | int] = [now_us]
        for rule in rules:
            args += ["g" if rule.kind == "gcra" else "w", rule.limit, rule.period_us, rule.interval_us, rule.cost]
        try:
            raw = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimitStoreUnavailable(str(exc) or type(exc).__name__) from exc
        allowed, index, remaining, retry_after, reset_after = (int(x) for x in raw)
        decided = rules[index - 1] if index else None
        return Verdict(bool(allowed), decided, remaining, retry_after, reset_after)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimitStoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        gcra = [rule for rule in rules if rule.kind == "gcra"]
        if not gcra or not units:
            return
        keys = [*(self._prefix + rule.store_key(now_us) for rule in gcra), self._clock_key]
        args: list[int] = [now_us, units, *(rule.interval_us for rule in gcra)]
        try:
            await self._adjust_script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise LimitStoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

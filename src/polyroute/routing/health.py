"""Live endpoint health and stats: recent failures, outlier ejection (circuit breaking), latency.

The relay reports every upstream attempt's outcome here; routing reads a `HealthSnapshot` (plain
values) to order the next plan. `HealthStore` is the seam: `MemoryHealth` keeps everything in this
process with an injected clock; `SharedHealth` (routing/redis_health.py) wraps it to share outcomes
between processes through Redis.

Circuit breaking: `eject_after` consecutive failures eject an endpoint for `base_ejection_s`,
doubling on every re-ejection up to `max_ejection_s`. When the period ends the endpoint is half-open:
one request (the one that claims the probe) may try it in its normal place; success closes the
circuit, failure ejects it again for longer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

EndpointKey = tuple[str, str]  # (model id, provider slug)

FAILURE_WINDOW_S = 30.0  # OpenRouter: skip endpoints with failures in the last 30 s
STATS_WINDOW_S = 30 * 60.0  # latency / throughput / uptime over the last 30 minutes
_MAX_SAMPLES = 512  # per endpoint: bounds memory and the cost of a percentile


class HealthState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # failed within the failure window: tried after the healthy ones
    EJECTED = "ejected"  # circuit open: tried only when everything else failed
    HALF_OPEN = "half_open"  # ejection over, one probe allowed (goes in its normal place)
    PROBING = "probing"  # ejection over, a probe is in flight: still tried last


# Members read per request through module names: `HealthState.X` goes through EnumType.__getattr__.
_OK, _DEGRADED, _EJECTED = HealthState.OK, HealthState.DEGRADED, HealthState.EJECTED
_PROBING, _HALF_OPEN = HealthState.PROBING, HealthState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50: float
    p75: float
    p90: float
    p99: float

    def as_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p75": self.p75, "p90": self.p90, "p99": self.p99}


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """What one endpoint did over the stats window. None: no sample yet."""

    state: HealthState = HealthState.OK
    uptime: float | None = None  # fraction of attempts that succeeded, 0..1
    ttft_s: Percentiles | None = None  # time to first token (latency in OpenRouter's wording)
    latency_s: Percentiles | None = None  # whole request duration
    throughput_tps: Percentiles | None = None  # completion tokens per second after the first token
    ejected_until_s: float | None = None  # clock value; None unless ejected
    consecutive_failures: int = 0


HEALTHY = EndpointStats()


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Plain values for routing: the stats of each endpoint that has any."""

    endpoints: Mapping[EndpointKey, EndpointStats] = field(default_factory=dict)

    def of(self, key: EndpointKey) -> EndpointStats:
        return self.endpoints.get(key, HEALTHY)


class HealthStore(Protocol):
    def record_success(
        self, key: EndpointKey, *, ttft_s: float | None, latency_s: float, completion_tokens: int
    ) -> None: ...

    def record_failure(self, key: EndpointKey, *, retry_after_s: float | None = None) -> None: ...

    def snapshot(self, keys: Iterable[EndpointKey], *, window: bool = True) -> HealthSnapshot: ...

    def claim_probe(self, key: EndpointKey) -> bool: ...

    def release_probe(self, key: EndpointKey) -> None: ...

    def all_stats(self) -> dict[EndpointKey, EndpointStats]: ...


def percentiles(values: list[float]) -> Percentiles | None:
    """Nearest-rank percentiles; None for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return Percentiles(rank(0.50), rank(0.75), rank(0.90), rank(0.99))


@dataclass(slots=True)
class _Sample:
    at_s: float
    ok: bool
    ttft_s: float | None = None
    latency_s: float | None = None
    throughput_tps: float | None = None


@dataclass(slots=True)
class _Endpoint:
    samples: deque[_Sample] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    last_failure_s: float | None = None
    avoid_until_s: float = -math.inf  # Retry-After: no traffic before this
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until_s: float | None = None
    probe_in_flight: bool = False
    cached: EndpointStats | None = None
    cached_at_s: float = -math.inf


class MemoryHealth:
    """In-process `HealthStore`. Not thread-safe: one event loop per process uses it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        failure_window_s: float = FAILURE_WINDOW_S,
        eject_after: int = 3,
        base_ejection_s: float = 30.0,
        max_ejection_s: float = 600.0,
        stats_window_s: float = STATS_WINDOW_S,
        stats_refresh_s: float = 1.0,
    ) -> None:
        self._clock = clock
        self._failure_window_s = failure_window_s
        self._eject_after = eject_after
        self._base_ejection_s = base_ejection_s
        self._max_ejection_s = max_ejection_s
        self._stats_window_s = stats_window_s
        self._stats_refresh_s = stats_refresh_s
        self._endpoints: dict[EndpointKey, _Endpoint] = {}

    def _get(self, key: EndpointKey) -> _Endpoint:
        entry = self._endpoints.get(key)
        if entry is None:
            entry = self._endpoints[key] = _Endpoint()
        return entry

    def record_success(
        self,
        key: EndpointKey,
        *,
        ttft_s: float | None,
        latency_s: float,
        completion_tokens: int,
        ago_s: float = 0.0,
    ) -> None:
        """`ago_s`: the outcome happened that long ago (another process's, merged late)."""
        now = self._clock() - ago_s
        entry = self._get(key)
        throughput = None
        if ttft_s is not None and completion_tokens > 1 and latency_s > ttft_s:
            throughput = (completion_tokens - 1) / (latency_s - ttft_s)
        entry.samples.append(_Sample(now, True, ttft_s, latency_s, throughput))
        entry.consecutive_failures = 0
        entry.probe_in_flight = False
        if entry.ejected_until_s is not None:  # a successful probe closes the circuit
            entry.ejected_until_s = None
            entry.ejections = max(0, entry.ejections - 1)
        entry.cached = None

    def record_failure(self, key: EndpointKey, *, retry_after_s: float | None = None, ago_s: float = 0.0) -> None:
        now = self._clock() - ago_s
        entry = self._get(key)
        entry.samples.append(_Sample(now, False))
        entry.last_failure_s = now if entry.last_failure_s is None else max(entry.last_failure_s, now)
        entry.consecutive_failures += 1
        if retry_after_s is not None:
            entry.avoid_until_s = max(entry.avoid_until_s, now + retry_after_s)
        # Half-open and failing again (this process's probe, or another's merged in): still broken.
        half_open = entry.ejected_until_s is not None and now >= entry.ejected_until_s
        if entry.consecutive_failures >= self._eject_after or entry.probe_in_flight or half_open:
            entry.ejections += 1
            period = min(self._max_ejection_s, self._base_ejection_s * 2 ** (entry.ejections - 1))
            entry.ejected_until_s = entry.last_failure_s + period  # from the newest failure (merged ones may be older)
            entry.consecutive_failures = 0
        entry.probe_in_flight = False
        entry.cached = None

    def claim_probe(self, key: EndpointKey) -> bool:
        """Take the one half-open probe slot; False when another request holds it (or none is due)."""
        entry = self._endpoints.get(key)
        if entry is None or entry.ejected_until_s is None or entry.probe_in_flight:
            return False
        if self._clock() < entry.ejected_until_s:
            return False
        entry.probe_in_flight = True
        entry.cached = None
        return True

    def release_probe(self, key: EndpointKey) -> None:
        """The probe never reached the upstream (client left, plan cut short): let another take it."""
        entry = self._endpoints.get(key)
        if entry is not None and entry.probe_in_flight:
            entry.probe_in_flight = False
            entry.cached = None

    def _state(self, entry: _Endpoint, now: float) -> HealthState:
        if entry.ejected_until_s is not None:
            if now < entry.ejected_until_s:
                return _EJECTED
            return _PROBING if entry.probe_in_flight else _HALF_OPEN
        if now < entry.avoid_until_s:
            return _DEGRADED
        if entry.last_failure_s is not None and now - entry.last_failure_s < self._failure_window_s:
            return _DEGRADED
        return _OK

    def _stats(self, entry: _Endpoint, now: float) -> EndpointStats:
        cached = entry.cached
        if cached is not None and now - entry.cached_at_s < self._stats_refresh_s:
            state = self._state(entry, now)
            if state is cached.state:
                return cached
        since = now - self._stats_window_s
        recent = [s for s in entry.samples if s.at_s >= since]
        ok = [s for s in recent if s.ok]
        stats = EndpointStats(
            state=self._state(entry, now),
            uptime=len(ok) / len(recent) if recent else None,
            ttft_s=percentiles([s.ttft_s for s in ok if s.ttft_s is not None]),
            latency_s=percentiles([s.latency_s for s in ok if s.latency_s is not None]),
            throughput_tps=percentiles([s.throughput_tps for s in ok if s.throughput_tps is not None]),
            ejected_until_s=entry.ejected_until_s,
            consecutive_failures=entry.consecutive_failures,
        )
        entry.cached, entry.cached_at_s = stats, now
        return stats

    def snapshot(self, keys: Iterable[EndpointKey], *, window: bool = True) -> HealthSnapshot:
        """`window=False`: the state only (uptime and percentiles left None). Routing asks for the
        window only when a request sorts or filters by it: recomputing percentiles after every
        success was about 7 % of a request's CPU under load (issue #9)."""
        now = self._clock()
        endpoints = self._endpoints
        if window:
            found = {key: self._stats(entry, now) for key in keys if (entry := endpoints.get(key)) is not None}
        else:
            found = {key: self._state_only(entry, now) for key in keys if (entry := endpoints.get(key)) is not None}
        return HealthSnapshot(found)

    def _state_only(self, entry: _Endpoint, now: float) -> EndpointStats:
        state = self._state(entry, now)
        if state is _OK and entry.consecutive_failures == 0:
            return HEALTHY
        return EndpointStats(
            state=state, ejected_until_s=entry.ejected_until_s, consecutive_failures=entry.consecutive_failures
        )

    def all_stats(self) -> dict[EndpointKey, EndpointStats]:
        now = self._clock()
        return {key: self._stats(entry, now) for key, entry in self._endpoints.items()}

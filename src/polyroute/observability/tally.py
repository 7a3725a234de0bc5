"""Metric updates folded per series, handed to prometheus_client when a scrape or another worker needs them.

prometheus_client takes a lock and walks three or four Python calls on every `inc` and `observe`
(about 5,500 and 9,500 instructions; a chat request made eight such updates, 5 % of its
instructions: issue #9). Here an update adds to a plain dict keyed by (metric, *label values), and
`flush` hands each series its sum in one call:

- one process (`polyroute serve` with one worker): only `/metrics` reads the values, and it flushes
  before rendering, so updates stay folded until a scrape: what it shows is exact and current;
- several workers (multiprocess mode): whichever worker answers a scrape reads the others' values
  from their files, so the first update of a loop pass schedules a flush at the start of the next
  pass: another worker's updates are in the files one loop pass after they happen, before its
  response to the request that caused them has left its event loop. Under load a pass finishes
  several requests (the ledger's group commit resolves them together), and their updates of the
  same series are one call.

Outside a running loop (scripts, unit tests) a per-pass tally hands every update over at once.

Histograms are folded per bucket and handed over through prometheus_client's own per-bucket values
(`_upper_bounds`, `_buckets`, `_sum`: what its `observe` reads and updates), which the pinned version keeps;
tests/unit/observability/test_tally.py renders both ways and compares, so an upgrade that moved them
fails there.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

_Key = tuple[Any, ...]  # (metric, *label values)


class Tally:
    __slots__ = ("_counts", "_observed", "_scheduled_on", "per_pass")

    def __init__(self, *, per_pass: bool = False) -> None:
        self.per_pass = per_pass  # flush once per loop pass (several workers), else only when asked
        self._counts: dict[_Key, float] = {}
        # the histogram's bounds; hits per bucket (the last one +Inf), then the sum
        self._observed: dict[_Key, tuple[tuple[float, ...], list[float]]] = {}
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def count(self, key: _Key, amount: float = 1) -> None:
        """`child(*key).inc(amount)`, folded; `amount` must not be negative (as `Counter.inc`)."""
        counts = self._counts
        counts[key] = counts.get(key, 0) + amount
        if self.per_pass:
            self._schedule()

    def observe(self, key: _Key, value: float) -> None:
        """`child(*key).observe(value)`, folded, in the histogram's own buckets."""
        found = self._observed.get(key)
        if found is None:
            bounds = tuple(key[0]._upper_bounds)  # +Inf last, as the histogram completed them
            found = self._observed[key] = (bounds, [0.0] * (len(bounds) + 1))
        bounds, folded = found
        folded[bisect_left(bounds, value)] += 1  # the first bucket with value <= bound, as `observe`
        folded[-1] += value
        if self.per_pass:
            self._schedule()

    def _schedule(self) -> None:
        loop = self._scheduled_on
        if loop is not None and not loop.is_closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop will come back for it
            self.flush()
            return
        self._scheduled_on = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand every folded update to prometheus_client."""
        self._scheduled_on = None
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for key, amount in counts.items():
            series(key).inc(amount)
        for key, (_, folded) in observed.items():
            histogram = series(key)
            histogram._sum.inc(folded[-1])
            for bucket, hits in zip(histogram._buckets, folded, strict=False):  # the sum is left over
                if hits:
                    bucket.inc(hits)


_series: dict[_Key, Any] = {}


def series(key: _Key) -> Any:
    """`metric.labels(*values)` for key `(metric, *values)`, remembered (the metric itself without
    labels): label sets are few (routes, statuses, catalog models, outcomes) and `labels` validates
    and takes a lock on every call (about 6 µs)."""
    found = _series.get(key)
    if found is None:
        metric, *values = key
        found = _series[key] = metric.labels(*values) if values else metric
    return found

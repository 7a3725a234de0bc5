"""The admin page's endpoints table: every routable endpoint with its live health from the relay's
health store (`HealthStore.all_stats()`), as plain rows for the template and the 5-second JSON poll."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from polyroute.http.services import Services
from polyroute.routing.health import HEALTHY, EndpointStats, Percentiles

_EPOCH_LIKE_S = 1e9  # a clock value above this is wall time (a shared store); below, this process's monotonic


def _wall_time(clock_s: float) -> float:
    """A health-store clock value as Unix time: MemoryHealth counts on time.monotonic()."""
    return clock_s if clock_s > _EPOCH_LIKE_S else time.time() + (clock_s - time.monotonic())


def _ms(found: Percentiles | None, name: str) -> int | None:
    return None if found is None else round(getattr(found, name) * 1000)


def _row(model: str, provider: str, stats: EndpointStats, traffic: bool) -> dict[str, Any]:
    until = None
    if stats.ejected_until_s is not None:
        until = datetime.fromtimestamp(_wall_time(stats.ejected_until_s), UTC).strftime("%H:%M:%S UTC")
    throughput = stats.throughput_tps
    return {
        "model": model,
        "provider": provider,
        "state": str(stats.state),
        "uptime_pct": None if stats.uptime is None else round(stats.uptime * 100, 1),
        "ttft_p50_ms": _ms(stats.ttft_s, "p50"),
        "ttft_p90_ms": _ms(stats.ttft_s, "p90"),
        "throughput_p50_tps": None if throughput is None else round(throughput.p50, 1),
        "consecutive_failures": stats.consecutive_failures,
        "ejected_until": until,
        "traffic": traffic,
    }


def endpoint_rows(core: Services, include_all: bool = False) -> list[dict[str, Any]]:
    """Endpoints of routable providers and any endpoint with recorded traffic (every one with
    `include_all`), troubled ones first, then by model and provider."""
    catalog = core.catalog
    stats = core.relay.health.all_stats()
    rows = []
    for model in catalog.models.values():
        for endpoint in model.endpoints:
            key = (model.id, endpoint.provider)
            if include_all or key in stats or catalog.is_routable(endpoint.provider):
                rows.append(_row(model.id, endpoint.provider, stats.get(key, HEALTHY), key in stats))
    known = {(row["model"], row["provider"]) for row in rows}
    for (model_id, provider), found in stats.items():  # e.g. a model the catalog no longer lists
        if (model_id, provider) not in known:
            rows.append(_row(model_id, provider, found, True))
    return sorted(rows, key=lambda r: (r["state"] == "ok", r["model"], r["provider"]))

"""GET /metrics: Prometheus text, behind `POLYROUTE_METRICS_TOKEN` (Bearer); 404 when no token is set.

Counters and histograms come from every worker (observability/metrics.py); the reservation backlog
(shared database) and endpoint health (this worker's view) are evaluated at scrape time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from polyroute.db.tables import reservations
from polyroute.domain.errors import NotFound, Unauthorized
from polyroute.http.services import Services
from polyroute.observability.metrics import CONTENT_TYPE, render
from polyroute.routing.health import HealthState


class _ScrapeTime:
    """Collector for values read when scraped: open reservations and endpoint health."""

    def __init__(self, open_reservations: int, open_reserved_pusd: int, services: Services) -> None:
        self._count = open_reservations
        self._pusd = open_reserved_pusd
        self._services = services

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "polyroute_ledger_open_reservations", "Credit reservations not yet settled or released", value=self._count
        )
        yield GaugeMetricFamily(
            "polyroute_ledger_reserved_usd", "USD held by open reservations", value=self._pusd / 10**12
        )
        health = GaugeMetricFamily(
            "polyroute_endpoint_up",
            "1 when an endpoint is routable normally (ok/degraded/half-open), 0 when ejected; this worker's view",
            labels=["model", "provider", "state"],
        )
        for (model, provider), stats in self._services.relay.health.all_stats().items():
            up = 0.0 if stats.state in (HealthState.EJECTED, HealthState.PROBING) else 1.0
            health.add_metric([model, provider, str(stats.state)], up)
        yield health


def _authorized(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    expected = "Bearer " + token
    return hmac.compare_digest(given.encode(), expected.encode())


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    token = services.settings.metrics_token
    if token is None:
        raise NotFound(f"Not found: {request.method} {request.url.path}")
    if not _authorized(request, token.reveal()):
        raise Unauthorized("A valid metrics token is required (Authorization: Bearer ...)")
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(reservations.c.amount_pusd), 0)).select_from(reservations)
            )
        ).one()
    body = render([_ScrapeTime(int(row[0]), int(row[1]), services)])
    return Response(body, media_type=None, headers={"content-type": CONTENT_TYPE})

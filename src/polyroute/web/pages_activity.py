"""Activity: charts of spend, tokens and requests per day (by model or key), a filterable table, CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from polyroute.domain.money import pusd_to_usd_string
from polyroute.web.auth import page
from polyroute.web.charts import stacked_chart
from polyroute.web.queries import MAX_CSV_ROWS, GenerationFilter, daily_series, day_range, list_generations
from polyroute.web.rendering import SECURITY_HEADERS, render, usd
from polyroute.web.state import web_services

PERIODS = (1, 7, 30)
STATUSES = ("ok", "error", "cancelled")
CSV_COLUMNS = (
    "id", "created_at", "model", "provider", "key_name", "status", "finish_reason", "streamed",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttft_ms", "app_title",
)  # fmt: skip


def _filter(request: Request) -> GenerationFilter:
    query = request.query_params
    days = int(query["days"]) if query.get("days", "").isdigit() and int(query["days"]) in PERIODS else 30
    status = query.get("status") if query.get("status") in STATUSES else None
    return GenerationFilter(
        model=query.get("model") or None, key_hash=query.get("key") or None, status=status, days=days
    )


async def _key_names(request: Request) -> dict[str, str]:
    core = web_services(request).core
    found = await core.accounts.list_keys(request.state.user.id, include_revoked=True)
    return {key.hash: key.name for key in found}


@page()
async def activity(request: Request) -> Response:
    core = web_services(request).core
    where = _filter(request)
    group_by = "key" if request.query_params.get("group") == "key" else "model"
    names = await _key_names(request)
    series = await daily_series(core.engine, request.state.user.id, group_by, where.days)
    days = day_range(where.days)
    labels = names if group_by == "key" else {}
    charts = [
        stacked_chart(series, days, "cost", "Spend", labels, usd),
        stacked_chart(series, days, "tokens", "Tokens", labels, lambda v: f"{int(v):,}"),
        stacked_chart(series, days, "requests", "Requests", labels, lambda v: f"{int(v):,}"),
    ]
    rows = await list_generations(core.engine, request.state.user.id, where)
    models = sorted({row["group"] for row in series} if group_by == "model" else {row["model"] for row in rows})
    return render(
        request, "activity.html", charts=charts, rows=rows, where=where, group_by=group_by, key_names=names,
        models=models, periods=PERIODS, statuses=STATUSES, query=request.url.query,
    )  # fmt: skip


def _csv_row(row: dict[str, Any], names: dict[str, str]) -> list[Any]:
    return [
        row["id"], row["created_at"].isoformat(), row["model"], row["provider"], names.get(row["key_hash"], ""),
        row["status"], row["finish_reason"] or "", row["streamed"], row["prompt_tokens"], row["completion_tokens"],
        row["reasoning_tokens"], pusd_to_usd_string(row["cost_pusd"]), row["latency_ms"], row["ttft_ms"],
        row["app_title"] or "",
    ]  # fmt: skip


@page()
async def activity_csv(request: Request) -> Response:
    core = web_services(request).core
    names = await _key_names(request)
    rows = await list_generations(core.engine, request.state.user.id, _filter(request), limit=MAX_CSV_ROWS)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(_csv_row(row, names))
    headers = {**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="polyroute-activity.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)

"""Models: a searchable, filterable, sortable list; a model page with its endpoints; rankings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec
from polyroute.domain.money import MoneyFormatError, per_million_to_pusd_per_token
from polyroute.web.auth import page
from polyroute.web.queries import rankings as ranking_rows
from polyroute.web.rendering import render
from polyroute.web.state import web_services

PAGE_SIZE = 60
SORTS = {"name": "Name", "newest": "Newest", "price": "Cheapest", "price_desc": "Most expensive", "context": "Context"}
MODALITIES = ("text", "image", "audio", "file", "video")


@dataclass(frozen=True, slots=True)
class ModelRow:
    model: ModelSpec
    cheapest: EndpointSpec | None
    providers: tuple[str, ...]
    parameters: frozenset[str]
    routable: bool


def _row(catalog: Catalog, model: ModelSpec) -> ModelRow:
    endpoints = catalog.routable_endpoints(model) or list(model.endpoints)
    parameters = frozenset(p for e in endpoints for p in e.supported_parameters)
    cheapest = endpoints[0] if endpoints else None
    return ModelRow(
        model, cheapest, tuple(sorted({e.provider for e in endpoints})), parameters, catalog.is_listed(model)
    )


def _price(text: str) -> int | None:
    try:
        return per_million_to_pusd_per_token(text) if text.strip() else None
    except MoneyFormatError:
        return None


def filter_models(rows: list[ModelRow], query: Mapping[str, str]) -> list[ModelRow]:
    text = query.get("q", "").strip().lower()
    provider, modality_in, modality_out = query.get("provider"), query.get("input"), query.get("output")
    min_context = int(query["min_context"]) if query.get("min_context", "").isdigit() else 0
    max_price = _price(query.get("max_price", ""))
    found = []
    for row in rows:
        model, cheapest = row.model, row.cheapest
        if text and text not in model.id.lower() and text not in model.name.lower():
            continue
        if provider and provider not in row.providers:
            continue
        if modality_in and modality_in not in model.input_modalities:
            continue
        if modality_out and modality_out not in model.output_modalities:
            continue
        if model.context_length < min_context:
            continue
        if query.get("free") and not (cheapest and cheapest.pricing.is_free):
            continue
        if max_price is not None and (cheapest is None or cheapest.pricing.prompt > max_price):
            continue
        if query.get("tools") and "tools" not in row.parameters:
            continue
        if query.get("json") and not row.parameters & {"response_format", "structured_outputs"}:
            continue
        found.append(row)
    return _sorted(found, query.get("sort", "name"))


def _sorted(rows: list[ModelRow], sort: str) -> list[ModelRow]:
    def price(row: ModelRow) -> int:
        return row.cheapest.pricing.prompt + row.cheapest.pricing.completion if row.cheapest else 0

    if sort == "newest":
        return sorted(rows, key=lambda r: -r.model.created)
    if sort == "price":
        return sorted(rows, key=price)
    if sort == "price_desc":
        return sorted(rows, key=lambda r: -price(r))
    if sort == "context":
        return sorted(rows, key=lambda r: -r.model.context_length)
    return sorted(rows, key=lambda r: r.model.name.lower())


@page(signed_in=False)
async def models(request: Request) -> Response:
    catalog = web_services(request).core.catalog
    query = request.query_params
    everything = query.get("all") == "1"
    rows = [_row(catalog, model) for model in catalog.list_models(include_unavailable=everything)]
    found = filter_models(rows, query)
    page_no = int(query["page"]) if query.get("page", "").isdigit() and int(query["page"]) > 0 else 1
    shown = found[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    providers = sorted({p for row in rows for p in row.providers})
    next_query = "&".join(f"{k}={v}" for k, v in query.items() if k != "page")
    return render(
        request, "models.html", rows=shown, total=len(found), page_no=page_no, page_size=PAGE_SIZE,
        providers=providers, sorts=SORTS, modalities=MODALITIES, q=query, next_query=next_query,
    )  # fmt: skip


@page(signed_in=False)
async def model_detail(request: Request) -> Response:
    catalog = web_services(request).core.catalog
    model_id = f"{request.path_params['author']}/{request.path_params['slug']}"
    model = catalog.models.get(model_id)
    if model is None:
        return render(request, "error.html", status=404, title="Not found", message=f"No model {model_id}.")
    endpoints = [(e, catalog.provider(e.provider), catalog.is_routable(e.provider)) for e in model.endpoints]
    parameters = sorted({p for e in model.endpoints for p in e.supported_parameters})
    return render(request, "model.html", model=model, endpoints=endpoints, parameters=parameters)


@page(signed_in=False)
async def rankings(request: Request) -> Response:
    rows = await ranking_rows(web_services(request).core.engine)
    return render(request, "rankings.html", rows=rows)

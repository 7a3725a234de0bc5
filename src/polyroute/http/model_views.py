"""OpenRouter's `Model` and `PublicEndpoint` shapes, rendered once from the static catalog.

`/models` is hit often by clients on start-up; its bytes are built once per process.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing
from polyroute.domain.money import pusd_to_usd_string
from polyroute.routing.health import EndpointStats, HealthSnapshot, HealthState, HealthStore


def pricing_body(pricing: Pricing) -> dict[str, str]:
    body = {
        "prompt": pusd_to_usd_string(pricing.prompt),
        "completion": pusd_to_usd_string(pricing.completion),
        "request": pusd_to_usd_string(pricing.request),
        "image": pusd_to_usd_string(pricing.image),
    }
    optional = {
        "input_cache_read": pricing.input_cache_read,
        "input_cache_write": pricing.input_cache_write,
        "internal_reasoning": pricing.internal_reasoning,
    }
    for name, value in optional.items():
        if value is not None:
            body[name] = pusd_to_usd_string(value)
    return body


def architecture_body(model: ModelSpec) -> dict[str, Any]:
    return {
        "modality": "+".join(model.input_modalities) + "->" + "+".join(model.output_modalities),
        "input_modalities": list(model.input_modalities),
        "output_modalities": list(model.output_modalities),
        "tokenizer": model.tokenizer,
        "instruct_type": model.instruct_type,
    }


def _supported_parameters(endpoints: list[EndpointSpec]) -> list[str]:
    names: dict[str, None] = {}
    for endpoint in endpoints:
        names.update(dict.fromkeys(endpoint.supported_parameters))
    return list(names)


def model_body(model: ModelSpec, endpoints: list[EndpointSpec]) -> dict[str, Any]:
    """`endpoints` are the routable ones (or all, for the include_unavailable view)."""
    top = endpoints[0] if endpoints else (model.endpoints[0] if model.endpoints else None)
    return {
        "id": model.id,
        "canonical_slug": model.canonical_slug,
        "hugging_face_id": model.hugging_face_id,
        "name": model.name,
        "created": model.created,
        "description": model.description,
        "context_length": model.context_length,
        "architecture": architecture_body(model),
        "pricing": pricing_body(top.pricing) if top else {"prompt": "0", "completion": "0"},
        "top_provider": {
            "context_length": top.context_length if top else model.context_length,
            "max_completion_tokens": top.max_completion_tokens if top else None,
            "is_moderated": top.is_moderated if top else False,
        },
        "per_request_limits": None,
        "supported_parameters": _supported_parameters(endpoints or list(model.endpoints)),
        "default_parameters": {},
        "supported_voices": None,
        "knowledge_cutoff": None,
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{model.id}/endpoints"},
    }


# Endpoint health -> OpenRouter's EndpointStatus (0 healthy, negative: degraded, circuit open).
_STATUS = {HealthState.OK: 0, HealthState.DEGRADED: -1, HealthState.HALF_OPEN: -1, HealthState.PROBING: -2,
           HealthState.EJECTED: -2}  # fmt: skip


def _stats_fields(stats: EndpointStats | None) -> dict[str, Any]:
    """Live stats of the last 30 minutes (this process's, or shared ones with a shared store)."""
    if stats is None:
        return {}
    uptime = None if stats.uptime is None else round(stats.uptime * 100, 2)
    return {
        "status": _STATUS[stats.state],
        "uptime_last_30m": uptime,
        "latency_last_30m": stats.ttft_s.as_dict() if stats.ttft_s else None,
        "throughput_last_30m": stats.throughput_tps.as_dict() if stats.throughput_tps else None,
    }


def endpoint_body(
    model: ModelSpec, endpoint: EndpointSpec, provider_name: str, stats: EndpointStats | None = None
) -> dict[str, Any]:
    return {
        "name": f"{provider_name} | {model.id}",
        "model_id": model.id,
        "model_name": model.name,
        "context_length": endpoint.context_length,
        "pricing": pricing_body(endpoint.pricing),
        "provider_name": provider_name,
        "tag": endpoint.provider,
        "quantization": endpoint.quantization,
        "max_completion_tokens": endpoint.max_completion_tokens,
        "max_prompt_tokens": endpoint.context_length,
        "supported_parameters": list(endpoint.supported_parameters),
        "status": 0,
        "uptime_last_5m": None,
        "uptime_last_30m": None,
        "uptime_last_1d": None,
        "supports_implicit_caching": False,
        "latency_last_30m": None,
        "throughput_last_30m": None,
        **_stats_fields(stats),
    }


class ModelViews:
    def __init__(self, catalog: Catalog, health: HealthStore | None = None) -> None:
        self._catalog = catalog
        self._health = health
        self._list_bytes: dict[bool, bytes] = {}

    def list_json(self, include_unavailable: bool) -> bytes:
        cached = self._list_bytes.get(include_unavailable)
        if cached is None:
            catalog = self._catalog
            models = catalog.list_models(include_unavailable=include_unavailable)
            data = [model_body(model, catalog.routable_endpoints(model)) for model in models]
            data.extend(self._alias_bodies(include_unavailable))
            body = {"data": data, "total_count": len(data), "links": {"next": None}}
            cached = self._list_bytes[include_unavailable] = msgspec.json.encode(body)
        return cached

    def _alias_bodies(self, include_unavailable: bool) -> list[dict[str, Any]]:
        """`~author/family-latest` entries: the target's body under the alias id, as OpenRouter lists them."""
        bodies = []
        for alias, target_id in sorted(self._catalog.aliases.items()):
            target = self._catalog.models[target_id]
            if not include_unavailable and not self._catalog.is_listed(target):
                continue
            body = model_body(target, self._catalog.routable_endpoints(target))
            body.update(id=alias, canonical_slug=alias, alias_target={"slug": target.id, "name": target.name})
            bodies.append(body)
        return bodies

    def endpoints(self, model: ModelSpec) -> dict[str, Any]:
        catalog = self._catalog
        endpoints = catalog.routable_endpoints(model)
        stats = self._health.snapshot((model.id, e.provider) for e in endpoints) if self._health else HealthSnapshot()
        return {
            "data": {
                "id": model.id,
                "name": model.name,
                "created": model.created,
                "description": model.description,
                "architecture": architecture_body(model),
                "endpoints": [
                    endpoint_body(
                        model, e, catalog.provider(e.provider).display_name, stats.endpoints.get((model.id, e.provider))
                    )
                    for e in endpoints
                ],
            }
        }

"""The built-in model list: data/catalog.json (made by scripts/build_catalog.py) as ModelSpec objects."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing

DATA_FILE = "data/catalog.json"


def _pricing(raw: Mapping[str, int]) -> Pricing:
    return Pricing(
        prompt=raw["prompt"],
        completion=raw["completion"],
        request=raw.get("request", 0),
        image=raw.get("image", 0),
        input_cache_read=raw.get("input_cache_read"),
        input_cache_write=raw.get("input_cache_write"),
        internal_reasoning=raw.get("internal_reasoning"),
    )


def _endpoint(model_id: str, raw: Mapping[str, Any], shared: dict[tuple[str, ...], tuple[str, ...]]) -> EndpointSpec:
    params = tuple(raw.get("supported_parameters", ()))
    modalities = tuple(raw.get("input_modalities", ("text",)))
    return EndpointSpec(
        model_id=model_id,
        provider=raw["provider"],
        upstream_id=raw["upstream_id"],
        pricing=_pricing(raw["pricing"]),
        context_length=raw["context_length"],
        max_completion_tokens=raw.get("max_completion_tokens"),
        # Hundreds of endpoints carry the same few tuples; share one object each.
        supported_parameters=shared.setdefault(params, params),
        quantization=raw.get("quantization"),
        input_modalities=shared.setdefault(modalities, modalities),
    )


def parse_models(data: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """ModelSpecs by id from the decoded catalog.json document."""
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}
    models: dict[str, ModelSpec] = {}
    for raw in data["models"]:
        model_id = raw["id"]
        models[model_id] = ModelSpec(
            id=model_id,
            name=raw["name"],
            canonical_slug=raw.get("canonical_slug", model_id),
            created=raw["created"],
            description=raw["description"],
            context_length=raw["context_length"],
            endpoints=tuple(_endpoint(model_id, ep, shared) for ep in raw["endpoints"]),
            input_modalities=shared.setdefault(tuple(raw["input_modalities"]), tuple(raw["input_modalities"])),
            tokenizer=raw.get("tokenizer", "Other"),
            hugging_face_id=raw.get("hugging_face_id"),
            supports_reasoning=raw.get("supports_reasoning", False),
        )
    return models


@functools.cache
def builtin_models() -> Mapping[str, ModelSpec]:
    """The packaged models by id, parsed once per process (read-only view)."""
    text = resources.files("polyroute.catalog").joinpath(DATA_FILE).read_bytes()
    return MappingProxyType(parse_models(json.loads(text)))

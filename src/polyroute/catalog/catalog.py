"""The catalog the server routes with: providers and models, built-ins plus the operator's config.

Built once at start-up (`load_catalog`) and read-only afterwards, so request handling never parses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from polyroute.catalog.aliases import resolve_aliases
from polyroute.catalog.builtin import builtin_models
from polyroute.catalog.config import load_config
from polyroute.catalog.local_models import LOCAL_SLUG, local_models, local_provider
from polyroute.catalog.presets import preset_providers
from polyroute.catalog.types import EndpointSpec, ModelSpec, ProviderSpec
from polyroute.domain.errors import BadRequest, NotFound

# OpenRouter's model-slug suffixes. The catalog only splits them off; routing gives them meaning.
VARIANTS = frozenset({"free", "nitro", "floor", "online", "thinking", "extended", "exacto"})


def _price_key(endpoint: EndpointSpec) -> int:
    return endpoint.pricing.prompt + endpoint.pricing.completion


def _cheapest_first(model: ModelSpec) -> ModelSpec:
    ordered = tuple(sorted(model.endpoints, key=_price_key))  # stable: equal prices keep file order
    return model if ordered == model.endpoints else dataclasses.replace(model, endpoints=ordered)


class Catalog:
    """Providers by slug and models by id; an endpoint is routable when its provider is available
    (has its key, or needs none) and speaks a dialect this server has an adapter for."""

    __slots__ = ("_resolved", "_routable_slugs", "_sorted_models", "aliases", "models", "providers")

    def __init__(
        self,
        providers: Mapping[str, ProviderSpec],
        models: Iterable[ModelSpec],
        supported_dialects: Collection[str],
        alias_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.providers: dict[str, ProviderSpec] = dict(providers)
        self.models: dict[str, ModelSpec] = {model.id: _cheapest_first(model) for model in models}
        self._routable_slugs = frozenset(
            slug for slug, spec in self.providers.items() if spec.available and spec.dialect in supported_dialects
        )
        self._sorted_models = [self.models[model_id] for model_id in sorted(self.models)]
        self.aliases: dict[str, str] = resolve_aliases(self.models, self.is_listed, alias_overrides or {})
        # Slugs resolved before (a catalog never changes): one dict lookup per request rather than
        # the parse (issue #9). Only slugs that resolved get here, so it is bounded by the catalog.
        self._resolved: dict[str, tuple[ModelSpec, str | None]] = {}

    def __repr__(self) -> str:
        # Never the specs themselves: a repr should not be a place where configuration leaks.
        return (
            f"Catalog(models={len(self.models)}, providers={len(self.providers)}, "
            f"routable_providers={sorted(self._routable_slugs)})"
        )

    def provider(self, slug: str) -> ProviderSpec:
        """The provider named `slug`; KeyError if there is none (endpoints only name known ones)."""
        return self.providers[slug]

    def is_routable(self, provider_slug: str) -> bool:
        return provider_slug in self._routable_slugs

    def routable_endpoints(self, model: ModelSpec) -> list[EndpointSpec]:
        """The model's endpoints this server can call now, cheapest first."""
        return [endpoint for endpoint in model.endpoints if endpoint.provider in self._routable_slugs]

    def is_listed(self, model: ModelSpec) -> bool:
        """Shown by /models: at least one endpoint is routable."""
        return any(endpoint.provider in self._routable_slugs for endpoint in model.endpoints)

    def list_models(self, include_unavailable: bool = False) -> list[ModelSpec]:
        """Models sorted by id; only listed ones unless `include_unavailable`."""
        if include_unavailable:
            return list(self._sorted_models)
        return [model for model in self._sorted_models if self.is_listed(model)]

    def default_model_id(self) -> str | None:
        """For a request without `model` (and no account default): the first routable local model."""
        for model in self.models.values():
            if any(e.provider == LOCAL_SLUG for e in self.routable_endpoints(model)):
                return model.id
        return None

    def resolve(self, model_slug: str) -> tuple[ModelSpec, str | None]:
        """`author/slug[:variant]` -> (model, variant or None).

        An id that exists as written wins (OpenRouter lists `x:free` models of their own); otherwise a
        known variant suffix is split off. Raises BadRequest for a malformed slug and NotFound for an
        unknown model or a `:free` request on a model with no free endpoint.
        """
        found = self._resolved.get(model_slug) if isinstance(model_slug, str) else None
        if found is None:
            found = self._resolve(model_slug)  # raises for anything but a known model's slug
            self._resolved[model_slug] = found
        return found

    def _resolve(self, model_slug: str) -> tuple[ModelSpec, str | None]:
        if isinstance(model_slug, str) and model_slug.startswith("~"):
            target = self.aliases.get(model_slug)
            if target is None:
                raise NotFound(f"No endpoints found for {model_slug}.")
            model_slug = target
        author, _, rest = model_slug.partition("/") if isinstance(model_slug, str) else ("", "", "")
        if not author or not rest or model_slug != model_slug.strip():
            raise BadRequest(f"{model_slug} is not a valid model ID")
        base, _, suffix = model_slug.rpartition(":")
        variant = suffix if base and suffix in VARIANTS else None
        model = self.models.get(model_slug)
        if model is None and variant is not None:
            model = self.models.get(base)
        if model is None or (variant == "free" and not any(e.pricing.is_free for e in model.endpoints)):
            raise NotFound(f"No endpoints found for {model_slug}.")
        return model, variant


def load_catalog(
    env: Mapping[str, str],
    config_path: Path | None,
    supported_dialects: Collection[str],
) -> Catalog:
    """Presets switched on by `env`, the built-in models, then the operator's config file over both.

    Raises polyroute.catalog.config.ConfigError when the file is unusable.
    """
    providers = {**preset_providers(env), LOCAL_SLUG: local_provider(env)}
    models: Mapping[str, ModelSpec] = {**builtin_models(), **{m.id: m for m in local_models()}}
    aliases: dict[str, str] = {}
    if config_path is not None:
        config = load_config(config_path, env, presets=providers, builtin_models=models)
        providers = {**providers, **config.providers}
        models = {**models, **config.models}
        aliases = config.aliases
    return Catalog(providers, models.values(), supported_dialects, aliases)

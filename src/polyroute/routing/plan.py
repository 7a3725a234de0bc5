"""Build the ordered list of (model, endpoint, provider) attempts for one request.

Order: the requested model's routable endpoints (cheapest first, as the catalog sorts them),
then each fallback model's in turn (`models: [...]`). Richer routing (the `provider` object,
health, sort modes) refines this ordering without changing its shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, ProviderSpec
from polyroute.domain.errors import NoProviderAvailable, NotFound


@dataclass(frozen=True, slots=True)
class Attempt:
    model: ModelSpec
    endpoint: EndpointSpec
    provider: ProviderSpec


def _endpoints_for_variant(endpoints: list[EndpointSpec], variant: str | None) -> list[EndpointSpec]:
    if variant == "free":
        return [e for e in endpoints if e.pricing.is_free]
    if variant == "floor":
        return sorted(endpoints, key=lambda e: e.pricing.prompt + e.pricing.completion)
    return endpoints


def plan_attempts(catalog: Catalog, model_slugs: Iterable[str]) -> list[Attempt]:
    """Raises NotFound for an unknown model slug, NoProviderAvailable when nothing is routable."""
    attempts: list[Attempt] = []
    seen: set[tuple[str, str]] = set()
    slugs = list(dict.fromkeys(model_slugs))
    for slug in slugs:
        model, variant = catalog.resolve(slug)
        for endpoint in _endpoints_for_variant(catalog.routable_endpoints(model), variant):
            if (model.id, endpoint.provider) in seen:
                continue
            seen.add((model.id, endpoint.provider))
            attempts.append(Attempt(model, endpoint, catalog.provider(endpoint.provider)))
    if not attempts:
        if slugs and slugs[0].endswith(":free"):
            raise NotFound(f"No endpoints found for {slugs[0]}.")
        raise NoProviderAvailable(
            f"No provider is available for {', '.join(slugs)}: none of its providers is configured "
            "(set the provider's API key) or all are excluded",
        )
    return attempts

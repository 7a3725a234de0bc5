"""Build the ordered list of (model, endpoint, provider) attempts for one request. Pure.

Inputs: the model slugs (the requested one, then `models: [...]` fallbacks), the request's
`provider` preferences, a health snapshot and a random source (seeded in tests). Each model's
endpoints are filtered (`only`, `ignore`, `data_collection`, `quantizations`, `max_price`,
`require_parameters`, `:free`), then ordered:

- `order` first (in that order), the rest after unless `allow_fallbacks` is false;
- `sort` (or `:floor` = price, `:nitro` = throughput) orders the rest strictly;
- otherwise OpenRouter's load balancing: among endpoints with no failure in the last 30 s, one is
  picked with weight 1/price², the others follow cheapest first, then the recently failed ones;
- endpoints missing `preferred_min_throughput` / `preferred_max_latency` move behind those that meet
  them; ejected endpoints (open circuit) are always last, tried only when all else failed.

Fallback models keep their place after the requested model's endpoints (partition by model).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, ProviderSpec
from polyroute.domain.errors import NoProviderAvailable, NotFound
from polyroute.routing.health import EndpointStats, HealthSnapshot, HealthState, Percentiles
from polyroute.routing.preferences import DEFAULT_PREFERENCES, MaxPrice, ProviderPreferences

_NO_MAX_PRICE = MaxPrice()

# Parameters every endpoint takes (the adapters always forward them): never a reason to skip one.
_ALWAYS_SUPPORTED = frozenset({"stop", "user", "parallel_tool_calls", "cache_control"})
_LAST_RESORT = (HealthState.EJECTED, HealthState.PROBING)
# Enum members read once: each `HealthState.X` in a per-request loop goes through EnumType.__getattr__.
_OK = HealthState.OK
_ROUTABLE = (HealthState.OK, HealthState.HALF_OPEN)
_EMPTY_HEALTH = HealthSnapshot()


@dataclass(frozen=True, slots=True)
class Attempt:
    model: ModelSpec
    endpoint: EndpointSpec
    provider: ProviderSpec

    @property
    def key(self) -> tuple[str, str]:
        return (self.model.id, self.endpoint.provider)


def price_key(endpoint: EndpointSpec) -> int:
    return endpoint.pricing.prompt + endpoint.pricing.completion


def _names_of(provider: ProviderSpec) -> set[str]:
    return {provider.slug.lower(), provider.display_name.lower()}


class _Filter:
    """Why endpoints were dropped, for the error when nothing is left."""

    def __init__(self, prefs: ProviderPreferences, catalog: Catalog, sent_parameters: Collection[str]) -> None:
        self.prefs = prefs
        self.catalog = catalog
        self.needed = frozenset(sent_parameters) - _ALWAYS_SUPPORTED
        self.reasons: dict[str, None] = {}
        # The common request filters nothing: skip the per-endpoint checks (issue #9).
        self._filters = bool(
            prefs.only
            or prefs.ignore
            or prefs.data_collection == "deny"
            or prefs.quantizations
            or prefs.max_price != _NO_MAX_PRICE
            or prefs.require_parameters
        )

    def keep(self, endpoint: EndpointSpec) -> bool:
        if not self._filters:
            return True
        prefs = self.prefs
        names = _names_of(self.catalog.provider(endpoint.provider))
        checks = (
            ("only", not prefs.only or bool(names & set(prefs.only))),
            ("ignore", not names & set(prefs.ignore)),
            ("data_collection", prefs.data_collection != "deny" or self._denies_collection(endpoint)),
            ("quantizations", not prefs.quantizations or (endpoint.quantization or "unknown") in prefs.quantizations),
            ("max_price", _within_price(endpoint, prefs)),
            ("require_parameters", not prefs.require_parameters or _supports_all(endpoint, self.needed)),
        )
        for reason, passed in checks:
            if not passed:
                self.reasons[reason] = None
                return False
        return True

    def _denies_collection(self, endpoint: EndpointSpec) -> bool:
        return self.catalog.provider(endpoint.provider).data_collection == "deny"


def _within_price(endpoint: EndpointSpec, prefs: ProviderPreferences) -> bool:
    cap, pricing = prefs.max_price, endpoint.pricing
    pairs = ((cap.prompt, pricing.prompt), (cap.completion, pricing.completion), (cap.request, pricing.request))
    return all(limit is None or price <= limit for limit, price in (*pairs, (cap.image, pricing.image)))


def _supports_all(endpoint: EndpointSpec, needed: Collection[str]) -> bool:
    supported = endpoint.supported_parameters
    return not supported or all(name in supported for name in needed)


def _meets(stats: Percentiles | None, cutoffs: Mapping[str, float], *, at_least: bool) -> bool:
    if not cutoffs or stats is None:
        return True  # no stats yet: not a reason to demote
    values = stats.as_dict()
    return all(values[p] >= cut if at_least else values[p] <= cut for p, cut in cutoffs.items())


def _weighted_first(endpoints: list[EndpointSpec], rng: random.Random) -> list[EndpointSpec]:
    """One endpoint picked with weight 1/price² (free ones first, uniformly), the rest cheapest first."""
    if len(endpoints) < 2:
        return endpoints
    free = [e for e in endpoints if price_key(e) == 0]
    if free:
        chosen = free[rng.randrange(len(free))]
    else:
        weights = [1.0 / float(price_key(e)) ** 2 for e in endpoints]
        chosen = rng.choices(endpoints, weights=weights, k=1)[0]
    return [chosen, *(e for e in endpoints if e is not chosen)]


def _sorted(endpoints: list[EndpointSpec], sort: str, stats_of: Mapping[str, EndpointStats]) -> list[EndpointSpec]:
    def key(endpoint: EndpointSpec) -> tuple[int, float, int]:
        stats = stats_of.get(endpoint.provider)
        if sort == "throughput":
            value = stats.throughput_tps.p50 if stats and stats.throughput_tps else None
            return (value is None, -(value or 0.0), price_key(endpoint))
        if sort == "latency":
            value = stats.ttft_s.p50 if stats and stats.ttft_s else None
            return (value is None, value or 0.0, price_key(endpoint))
        return (False, 0.0, price_key(endpoint))

    return sorted(endpoints, key=key)


def order_endpoints(
    endpoints: list[EndpointSpec],
    prefs: ProviderPreferences,
    provider_names: Mapping[str, set[str]],
    stats_of: Mapping[str, EndpointStats],
    rng: random.Random,
    sort: str | None,
) -> list[EndpointSpec]:
    """One model's filtered endpoints (cheapest first) in the order they will be tried."""
    ordered: list[EndpointSpec] = []
    rest = list(endpoints)
    if prefs.order:
        rank = {name: i for i, name in enumerate(prefs.order)}
        chosen = [(min(rank[n] for n in provider_names[e.provider] & rank.keys()), e) for e in rest
                  if provider_names[e.provider] & rank.keys()]  # fmt: skip
        ordered = [e for _, e in sorted(chosen, key=lambda pair: pair[0])]
        rest = [e for e in rest if e not in ordered] if prefs.allow_fallbacks else []

    def state(endpoint: EndpointSpec) -> HealthState:
        stats = stats_of.get(endpoint.provider)
        return stats.state if stats else _OK

    if sort:
        rest = _sorted(rest, sort, stats_of)
    else:
        healthy = [e for e in rest if state(e) in _ROUTABLE]
        rest = _weighted_first(healthy, rng) + [e for e in rest if e not in healthy]

    def preferred(endpoint: EndpointSpec) -> bool:
        stats = stats_of.get(endpoint.provider)
        throughput = _meets(stats.throughput_tps if stats else None, prefs.min_throughput_tps, at_least=True)
        return throughput and _meets(stats.ttft_s if stats else None, prefs.max_latency_s, at_least=False)

    rest = sorted(rest, key=lambda e: not preferred(e))  # stable
    plan = ordered + rest
    if not prefs.allow_fallbacks and not prefs.order:
        plan = plan[:1]
    return sorted(plan, key=lambda e: state(e) in _LAST_RESORT)  # stable: open circuits go last


def _variant_endpoints(endpoints: list[EndpointSpec], variant: str | None) -> list[EndpointSpec]:
    if variant == "free":
        return [e for e in endpoints if e.pricing.is_free]
    return endpoints


_VARIANT_SORTS = {"floor": "price", "nitro": "throughput"}
_STATS_SORTS = frozenset({"throughput", "latency"})


def uses_endpoint_stats(preferences: ProviderPreferences, variants: Iterable[str | None]) -> bool:
    """Whether planning reads endpoints' uptime and percentiles (not only their health state):
    a sort by throughput or latency (`:nitro` included) or a preferred throughput/latency cutoff."""
    if preferences.min_throughput_tps or preferences.max_latency_s:
        return True
    if preferences.sort is not None:
        return preferences.sort in _STATS_SORTS
    return any(_VARIANT_SORTS.get(variant or "") in _STATS_SORTS for variant in variants)


def is_fixed(catalog: Catalog, resolved: Iterable[tuple[ModelSpec, str | None]]) -> bool:
    """Whether `plan_attempts` with the default preferences gives these models' attempts in one order
    whatever the endpoints' health and the random draw: each model has at most one endpoint to try
    (health and the draw only order several endpoints of one model; open circuits are still tried)."""
    return all(len(_variant_endpoints(catalog.routable_endpoints(model), variant)) <= 1 for model, variant in resolved)


def plan_attempts(
    catalog: Catalog,
    model_slugs: Iterable[str],
    preferences: ProviderPreferences = DEFAULT_PREFERENCES,
    health: HealthSnapshot = _EMPTY_HEALTH,
    rng: random.Random | None = None,
    sent_parameters: Collection[str] = (),
) -> list[Attempt]:
    """Raises NotFound for an unknown model slug or when the preferences leave nothing,
    NoProviderAvailable when none of the models' providers is configured."""
    rng = rng or random.Random()
    attempts: list[Attempt] = []
    seen: set[tuple[str, str]] = set()
    slugs = list(dict.fromkeys(model_slugs))
    filters = _Filter(preferences, catalog, sent_parameters)
    any_routable = False
    for slug in slugs:
        model, variant = catalog.resolve(slug)
        routable = _variant_endpoints(catalog.routable_endpoints(model), variant)
        any_routable = any_routable or bool(routable)
        kept = [e for e in routable if filters.keep(e)]
        names = {e.provider: _names_of(catalog.provider(e.provider)) for e in kept}
        stats_of = {e.provider: health.of((model.id, e.provider)) for e in kept}
        sort = preferences.sort or _VARIANT_SORTS.get(variant or "")
        for endpoint in order_endpoints(kept, preferences, names, stats_of, rng, sort):
            if (model.id, endpoint.provider) in seen:
                continue
            seen.add((model.id, endpoint.provider))
            attempts.append(Attempt(model, endpoint, catalog.provider(endpoint.provider)))
    if not attempts:
        if slugs and slugs[0].endswith(":free"):
            raise NotFound(f"No endpoints found for {slugs[0]}.")
        if any_routable:
            raise NotFound(
                "No allowed providers are available for the selected model.",
                metadata={"models": ", ".join(slugs), "excluded_by": list(filters.reasons)},
            )
        raise NoProviderAvailable(
            f"No provider is available for {', '.join(slugs)}: none of its providers is configured "
            "(set the provider's API key) or all are excluded",
        )
    return attempts

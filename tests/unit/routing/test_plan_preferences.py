"""Routing decisions: every `provider` field and variant, deterministic for a given seed."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing, ProviderSpec
from polyroute.domain.errors import BadRequest, NotFound
from polyroute.routing.health import EndpointStats, HealthSnapshot, HealthState, Percentiles
from polyroute.routing.plan import plan_attempts, uses_endpoint_stats
from polyroute.routing.preferences import ProviderPreferences, parse_preferences

M = 1_000_000  # pUSD per token = USD 1 per million tokens


def _endpoint(provider: str, price: int, model: str = "a/m", **extra: Any) -> EndpointSpec:
    return EndpointSpec(model, provider, f"{provider}-up", Pricing(price, price), 8192, **extra)


def _catalog() -> Catalog:
    providers = {
        slug: ProviderSpec(slug, slug.title(), "openai", "http://x", needs_key=False, data_collection=dc)
        for slug, dc in (("cheap", "allow"), ("mid", "deny"), ("dear", "allow"), ("free", "allow"), ("alt", "deny"))
    }
    model = ModelSpec("a/m", "M", "a/m", 0, "", 8192, (
        _endpoint("cheap", 1 * M, quantization="fp8", supported_parameters=("temperature", "max_tokens")),
        _endpoint("mid", 2 * M, quantization="bf16", supported_parameters=("temperature", "tools", "max_tokens")),
        _endpoint("dear", 4 * M),
    ))  # fmt: skip
    free = ModelSpec("a/f", "F", "a/f", 0, "", 8192, (_endpoint("free", 0, "a/f"), _endpoint("cheap", 1 * M, "a/f")))
    fallback = ModelSpec("b/n", "N", "b/n", 0, "", 8192, (_endpoint("alt", 3 * M, "b/n"),))
    return Catalog(providers, [model, free, fallback], {"openai"})


def plan(slugs: list[str] | str = "a/m", provider: dict[str, Any] | None = None, seed: int = 7,
         health: HealthSnapshot | None = None, params: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    slugs = [slugs] if isinstance(slugs, str) else slugs
    prefs = parse_preferences(provider)
    attempts = plan_attempts(_catalog(), slugs, prefs, health or HealthSnapshot(), random.Random(seed), params)
    return [f"{a.model.id}@{a.provider.slug}" if a.model.id != "a/m" else a.provider.slug for a in attempts]


def _stats(**by_provider: EndpointStats) -> HealthSnapshot:
    return HealthSnapshot({("a/m", p): s for p, s in by_provider.items()})


def _pct(value: float) -> Percentiles:
    return Percentiles(value, value, value, value)


def test_default_load_balancing_is_deterministic_for_a_seed():
    assert all(plan(seed=s) == plan(seed=s) for s in range(20))


def test_default_load_balancing_weights_by_inverse_square_of_price():
    firsts = Counter(plan(seed=s)[0] for s in range(2000))
    # weights 1, 1/4, 1/16 -> 76 %, 19 %, 5 %
    assert 0.70 < firsts["cheap"] / 2000 < 0.82
    assert 0.14 < firsts["mid"] / 2000 < 0.24
    assert 0.02 < firsts["dear"] / 2000 < 0.08


def test_the_others_follow_cheapest_first():
    for seed in range(50):
        order = plan(seed=seed)
        rest = [p for p in ["cheap", "mid", "dear"] if p != order[0]]
        assert order == [order[0], *rest]


def test_endpoints_that_failed_in_the_last_30_s_go_after_the_healthy_ones():
    health = _stats(cheap=EndpointStats(state=HealthState.DEGRADED))
    assert all(plan(seed=s, health=health)[-1] == "cheap" for s in range(50))


def test_ejected_endpoints_go_last_even_with_an_explicit_order_or_sort():
    health = _stats(cheap=EndpointStats(state=HealthState.EJECTED))
    assert plan(provider={"order": ["cheap", "mid"]}, health=health) == ["mid", "dear", "cheap"]
    assert plan(provider={"sort": "price"}, health=health) == ["mid", "dear", "cheap"]


def test_half_open_endpoints_keep_their_place_for_the_probe():
    health = _stats(cheap=EndpointStats(state=HealthState.HALF_OPEN))
    assert plan(provider={"sort": "price"}, health=health)[0] == "cheap"


def test_order_tries_the_listed_providers_first_then_the_rest():
    assert plan(provider={"order": ["dear", "Mid"]})[:2] == ["dear", "mid"]
    assert set(plan(provider={"order": ["dear", "mid"]})) == {"dear", "mid", "cheap"}


def test_allow_fallbacks_false_uses_only_the_ordered_providers():
    assert plan(provider={"order": ["dear", "mid"], "allow_fallbacks": False}) == ["dear", "mid"]
    assert len(plan(provider={"allow_fallbacks": False})) == 1


def test_only_and_ignore_filter_by_slug_or_name():
    assert plan(provider={"only": ["mid", "Dear"], "sort": "price"}) == ["mid", "dear"]
    assert plan(provider={"ignore": ["cheap"], "sort": "price"}) == ["mid", "dear"]


def test_sort_price_throughput_latency():
    health = _stats(
        cheap=EndpointStats(throughput_tps=_pct(10), ttft_s=_pct(2.0)),
        mid=EndpointStats(throughput_tps=_pct(90), ttft_s=_pct(0.2)),
        dear=EndpointStats(throughput_tps=_pct(50), ttft_s=_pct(1.0)),
    )
    assert plan(provider={"sort": "price"}, health=health) == ["cheap", "mid", "dear"]
    assert plan(provider={"sort": "throughput"}, health=health) == ["mid", "dear", "cheap"]
    assert plan(provider={"sort": {"by": "latency"}}, health=health) == ["mid", "dear", "cheap"]


def test_sort_puts_endpoints_without_stats_after_measured_ones():
    health = _stats(dear=EndpointStats(throughput_tps=_pct(5)))
    assert plan(provider={"sort": "throughput"}, health=health) == ["dear", "cheap", "mid"]


def test_variants_nitro_floor_and_free():
    health = _stats(dear=EndpointStats(throughput_tps=_pct(500)), cheap=EndpointStats(throughput_tps=_pct(5)))
    assert plan("a/m:nitro", health=health) == ["dear", "cheap", "mid"]
    assert all(plan("a/m:floor", seed=s) == ["cheap", "mid", "dear"] for s in range(20))
    assert plan("a/f:free") == ["a/f@free"]


def test_max_price_is_per_million_tokens():
    assert plan(provider={"max_price": {"prompt": 2, "completion": "2"}, "sort": "price"}) == ["cheap", "mid"]
    with pytest.raises(NotFound, match="No allowed providers"):
        plan(provider={"max_price": {"prompt": 0.5}})


def test_require_parameters_keeps_only_endpoints_supporting_every_parameter_sent():
    # `dear` lists no parameters: taken to support them all, as for capability checks.
    assert plan(provider={"require_parameters": True, "sort": "price"}, params=("tools", "stop")) == ["mid", "dear"]
    assert plan(provider={"sort": "price"}, params=("tools",)) == ["cheap", "mid", "dear"]


def test_data_collection_deny_keeps_only_providers_that_do_not_retain():
    assert plan(provider={"data_collection": "deny"}) == ["mid"]
    assert plan(["a/m", "b/n"], provider={"zdr": True}) == ["mid", "b/n@alt"]


def test_quantizations_filter():
    assert plan(provider={"quantizations": ["fp8", "bf16"], "sort": "price"}) == ["cheap", "mid"]
    assert plan(provider={"quantizations": ["unknown"]}) == ["dear"]


def test_preferred_thresholds_demote_without_excluding():
    health = _stats(
        cheap=EndpointStats(throughput_tps=_pct(10), ttft_s=_pct(3.0)),
        mid=EndpointStats(throughput_tps=_pct(100), ttft_s=_pct(0.5)),
    )
    assert plan(provider={"preferred_min_throughput": 50, "sort": "price"}, health=health) == ["mid", "dear", "cheap"]
    latency = {"preferred_max_latency": {"p90": 1}, "sort": "price"}
    assert plan(provider=latency, health=health) == ["mid", "dear", "cheap"]


def test_model_fallbacks_come_after_the_requested_models_endpoints():
    assert plan(["a/m", "b/n"], provider={"sort": "price"}) == ["cheap", "mid", "dear", "b/n@alt"]


@pytest.mark.parametrize(
    "provider",
    [
        {"order": "x"},
        {"sort": "fastest"},
        {"max_price": {"prompt": "lots"}},
        {"data_collection": "maybe"},
        {"allow_fallbacks": "no"},
        {"preferred_max_latency": "1"},
        {"unknown_field": 1},
    ],
)
def test_invalid_preferences_are_400(provider):
    with pytest.raises(BadRequest, match="provider"):
        parse_preferences(provider)


def test_planning_reads_endpoint_figures_only_when_a_sort_or_cutoff_needs_them():
    prefs = ProviderPreferences
    assert not uses_endpoint_stats(prefs(), [None, "free", "floor"])
    assert not uses_endpoint_stats(prefs(sort="price"), ["nitro"])  # the request's own sort wins
    assert uses_endpoint_stats(prefs(), [None, "nitro"])
    assert uses_endpoint_stats(prefs(sort="latency"), [None])
    assert uses_endpoint_stats(prefs(sort="throughput"), [None])
    assert uses_endpoint_stats(prefs(min_throughput_tps={"p50": 10.0}), [None])
    assert uses_endpoint_stats(prefs(max_latency_s={"p90": 1.0}), [None])

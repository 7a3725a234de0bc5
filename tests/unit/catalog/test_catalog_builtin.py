"""The packaged built-in catalog: loads fast, every endpoint names a preset, prices are whole pUSD."""

from __future__ import annotations

import time

from polyroute.catalog.builtin import builtin_models
from polyroute.catalog.catalog import load_catalog
from polyroute.catalog.presets import PRESET_SLUGS


def test_every_builtin_endpoint_names_a_preset_provider() -> None:
    providers = {e.provider for m in builtin_models().values() for e in m.endpoints}
    assert providers <= PRESET_SLUGS


def test_builtin_prices_are_whole_non_negative_pusd() -> None:
    for model in builtin_models().values():
        assert model.endpoints, model.id
        for e in model.endpoints:
            values = [e.pricing.prompt, e.pricing.completion, e.pricing.image, e.pricing.input_cache_read or 0]
            assert all(isinstance(v, int) and v >= 0 for v in values), (model.id, e.provider)


def test_known_models_carry_their_list_prices() -> None:
    gpt = builtin_models()["openai/gpt-4o"]
    openai = next(e for e in gpt.endpoints if e.provider == "openai")
    assert (openai.pricing.prompt, openai.pricing.completion) == (2_500_000, 10_000_000)  # $2.50 / $10 per M
    assert openai.upstream_id == "gpt-4o" and "tools" in openai.supported_parameters
    haiku = {e.provider: e.upstream_id for e in builtin_models()["anthropic/claude-haiku-4.5"].endpoints}
    assert haiku["anthropic"] == "claude-haiku-4-5" and haiku["openrouter"] == "anthropic/claude-haiku-4.5"


def test_only_openrouter_lists_without_keys_nothing_is_routable() -> None:
    catalog = load_catalog({}, None, {"openai"})
    assert catalog.list_models() == []
    assert len(catalog.list_models(include_unavailable=True)) > 300


def test_openrouter_key_lists_models_and_resolves_free_variants() -> None:
    catalog = load_catalog({"OPENROUTER_API_KEY": "or-key"}, None, {"openai"})
    assert len(catalog.list_models()) > 300
    model, variant = catalog.resolve("google/gemma-4-31b-it:free")
    assert variant == "free" and all(e.pricing.is_free for e in model.endpoints)


def test_loading_the_whole_builtin_catalog_is_fast() -> None:
    builtin_models.cache_clear()
    started = time.perf_counter()
    load_catalog({"OPENAI_API_KEY": "k"}, None, {"openai"})
    assert time.perf_counter() - started < 0.5  # target 0.2 s; slack for slow CI machines

"""Catalog: resolving model slugs and variants, which endpoints are routable, listing and ordering."""

from __future__ import annotations

import pytest

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing, ProviderSpec
from polyroute.domain.errors import BadRequest, NotFound
from polyroute.domain.secret import Secret


def provider(slug: str, *, key: str | None = "k", dialect: str = "openai", needs_key: bool = True) -> ProviderSpec:
    return ProviderSpec(
        slug=slug,
        display_name=slug.title(),
        dialect=dialect,
        base_url=f"https://{slug}.example/v1",
        api_key_env=f"{slug.upper()}_API_KEY",
        api_key=Secret(key) if key else None,
        needs_key=needs_key,
    )


def endpoint(model_id: str, provider_slug: str, prompt: int, completion: int) -> EndpointSpec:
    return EndpointSpec(model_id, provider_slug, model_id, Pricing(prompt, completion), context_length=1000)


def model(model_id: str, *endpoints: EndpointSpec) -> ModelSpec:
    return ModelSpec(model_id, model_id, model_id, 0, "", 1000, endpoints)


def make_catalog(supported: tuple[str, ...] = ("openai",)) -> Catalog:
    providers = {
        "cheap": provider("cheap"),
        "dear": provider("dear"),
        "nokey": provider("nokey", key=None),
        "claude": provider("claude", dialect="anthropic"),
        "box": provider("box", key=None, needs_key=False),
    }
    models = [
        model(
            "acme/chat",
            endpoint("acme/chat", "dear", 5, 5),
            endpoint("acme/chat", "cheap", 1, 1),
            endpoint("acme/chat", "box", 1, 1),
        ),
        model("acme/keyless", endpoint("acme/keyless", "nokey", 1, 1)),
        model("acme/other-dialect", endpoint("acme/other-dialect", "claude", 1, 1)),
        model("acme/gem", endpoint("acme/gem", "dear", 3, 3)),
        model("acme/gem:free", endpoint("acme/gem:free", "dear", 0, 0)),
        model("acme/mixed", endpoint("acme/mixed", "cheap", 0, 0), endpoint("acme/mixed", "dear", 2, 2)),
    ]
    return Catalog(providers, models, supported)


def test_resolve_returns_the_model_and_no_variant() -> None:
    found, variant = make_catalog().resolve("acme/chat")
    assert found.id == "acme/chat" and variant is None


@pytest.mark.parametrize("variant", ["free", "nitro", "floor", "online", "thinking", "extended", "exacto"])
def test_resolve_splits_known_variant_suffixes(variant: str) -> None:
    found, got = make_catalog().resolve(f"acme/mixed:{variant}")
    assert (found.id, got) == ("acme/mixed", variant)


def test_an_id_listed_with_its_free_suffix_resolves_to_that_model() -> None:
    found, variant = make_catalog().resolve("acme/gem:free")
    assert (found.id, variant) == ("acme/gem:free", "free")


def test_free_on_a_model_without_free_endpoints_is_not_found() -> None:
    with pytest.raises(NotFound) as info:
        make_catalog().resolve("acme/chat:free")
    assert info.value.message == "No endpoints found for acme/chat:free."


@pytest.mark.parametrize("slug", ["acme/unknown", "acme/chat:turbo", "nobody/chat"])
def test_unknown_models_are_not_found_with_openrouters_message(slug: str) -> None:
    with pytest.raises(NotFound) as info:
        make_catalog().resolve(slug)
    assert info.value.message == f"No endpoints found for {slug}."
    assert info.value.status == 404


@pytest.mark.parametrize("slug", ["", "gpt-4o", "/gpt-4o", "openai/", " openai/gpt-4o"])
def test_malformed_slugs_are_bad_requests(slug: str) -> None:
    with pytest.raises(BadRequest) as info:
        make_catalog().resolve(slug)
    assert info.value.message == f"{slug} is not a valid model ID"
    assert info.value.status == 400


def test_a_slug_resolves_the_same_every_time_and_a_refused_one_is_refused_every_time() -> None:
    catalog = make_catalog()
    for slug in ("acme/chat", "acme/mixed:nitro", "acme/gem:free"):
        assert catalog.resolve(slug) == catalog.resolve(slug) == make_catalog().resolve(slug)
    for slug, error in (("acme/unknown", NotFound), ("acme/chat:free", NotFound), ("gpt-4o", BadRequest)):
        for _ in range(2):
            with pytest.raises(error):
                catalog.resolve(slug)
    with pytest.raises(BadRequest):
        catalog.resolve(["acme/chat"])  # type: ignore[arg-type]  # not a string: never kept


def test_endpoints_are_ordered_cheapest_first_and_stable_for_equal_prices() -> None:
    chat = make_catalog().models["acme/chat"]
    assert [e.provider for e in chat.endpoints] == ["cheap", "box", "dear"]


def test_routable_needs_an_available_provider_in_a_supported_dialect() -> None:
    catalog = make_catalog()
    assert [e.provider for e in catalog.routable_endpoints(catalog.models["acme/chat"])] == ["cheap", "box", "dear"]
    assert catalog.routable_endpoints(catalog.models["acme/keyless"]) == []  # key not set
    assert catalog.routable_endpoints(catalog.models["acme/other-dialect"]) == []  # no adapter
    assert make_catalog(("openai", "anthropic")).is_listed(make_catalog().models["acme/other-dialect"])


def test_disabled_local_presets_are_not_routable() -> None:
    off = ProviderSpec("ollama", "Ollama", "openai", "http://127.0.0.1:11434/v1", needs_key=False, enabled=False)
    catalog = Catalog({"ollama": off}, [model("me/m", endpoint("me/m", "ollama", 0, 0))], ("openai",))
    assert not catalog.is_listed(catalog.models["me/m"])


def test_list_models_is_sorted_and_hides_unlisted_models_unless_asked() -> None:
    catalog = make_catalog()
    listed = [m.id for m in catalog.list_models()]
    assert listed == ["acme/chat", "acme/gem", "acme/gem:free", "acme/mixed"]
    everything = [m.id for m in catalog.list_models(include_unavailable=True)]
    assert everything == sorted(everything) and "acme/keyless" in everything


def test_provider_lookup_by_slug() -> None:
    assert make_catalog().provider("cheap").display_name == "Cheap"
    with pytest.raises(KeyError):
        make_catalog().provider("ghost")


def test_catalog_repr_shows_no_secrets() -> None:
    secret_provider = provider("cheap", key="sk-super-secret")
    catalog = Catalog({"cheap": secret_provider}, [], ("openai",))
    assert "sk-super-secret" not in repr(catalog) + str(catalog) + repr(catalog.providers)
    assert "sk-super-secret" not in repr(secret_provider) + f"{secret_provider}"

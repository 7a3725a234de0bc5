"""Relay.plan keeps the plans that health and the random draw cannot change, and only those."""

from __future__ import annotations

import random
from typing import Any, cast

import pytest
from tests.unit.routing.test_plan_preferences import M, _endpoint

from polyroute.catalog.catalog import Catalog
from polyroute.catalog.types import ModelSpec, ProviderSpec
from polyroute.domain.chat import Attribution, ChatRequest
from polyroute.domain.errors import NotFound
from polyroute.http.chat_schema import parse_chat_request
from polyroute.relay import Relay
from polyroute.routing.health import HealthSnapshot, HealthState, MemoryHealth
from polyroute.routing.plan import plan_attempts
from polyroute.routing.preferences import DEFAULT_PREFERENCES


def _catalog() -> Catalog:
    providers = {slug: ProviderSpec(slug, slug.title(), "openai", "http://x", needs_key=False)
                 for slug in ("cheap", "mid", "dear", "alt", "free")}  # fmt: skip
    several = ModelSpec("a/m", "M", "a/m", 0, "", 8192, (
        _endpoint("cheap", 1 * M), _endpoint("mid", 2 * M), _endpoint("dear", 4 * M),
    ))  # fmt: skip
    one = ModelSpec("b/n", "N", "b/n", 0, "", 8192, (
        _endpoint("alt", 3 * M, "b/n", supported_parameters=("temperature", "max_tokens")),
    ))  # fmt: skip
    # Two endpoints, one of them free: `c/f:free` has one endpoint to try, `c/f` two.
    free = ModelSpec("c/f", "F", "c/f", 0, "", 8192, (_endpoint("free", 0, "c/f"), _endpoint("cheap", 1 * M, "c/f")))
    return Catalog(providers, [several, one, free], {"openai"})


def _relay(seed: int = 0, health: MemoryHealth | None = None) -> Relay:
    return Relay(_catalog(), cast(Any, None), cast(Any, None), keepalive_s=1, health=health, rng=random.Random(seed))


def _request(model: str, **fields: Any) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_chat_request(body, Attribution(referer=None, title=None))


def _names(relay: Relay, request: ChatRequest) -> list[str]:
    return [f"{a.model.id}@{a.endpoint.provider}" for a in relay.plan(request)[0]]


@pytest.mark.parametrize("slug", ["b/n", "c/f:free"])
def test_a_kept_plan_equals_a_fresh_one_whatever_the_health_and_reads_the_health_each_time(slug: str) -> None:
    health = MemoryHealth()
    relay = _relay(health=health)
    first = _names(relay, _request(slug))
    key = relay.plan(_request(slug))[0][0].key
    for _ in range(3):  # the circuit opens: the only endpoint is still tried, and the snapshot says so
        health.record_failure(key)
    attempts, snapshot = relay.plan(_request(slug))
    assert snapshot.of(key).state is HealthState.EJECTED
    fresh = plan_attempts(relay.catalog, [slug], DEFAULT_PREFERENCES, health.snapshot([key]), random.Random(1))
    assert [a.key for a in attempts] == [a.key for a in fresh]
    assert [f"{a.model.id}@{a.endpoint.provider}" for a in attempts] == first


def test_several_endpoints_are_drawn_afresh_for_every_request() -> None:
    relay = _relay(seed=3)
    firsts = {_names(relay, _request("a/m"))[0] for _ in range(60)}
    assert len(firsts) > 1


def test_preferences_and_models_of_the_request_are_planned_as_asked_after_a_kept_plan() -> None:
    relay = _relay()
    assert _names(relay, _request("b/n")) == ["b/n@alt"]
    with pytest.raises(NotFound):
        relay.plan(_request("b/n", provider={"ignore": ["alt"]}))
    with_models = _names(relay, _request("b/n", models=["a/m"]))
    assert with_models[0] == "b/n@alt"
    assert sorted(with_models[1:]) == ["a/m@cheap", "a/m@dear", "a/m@mid"]


def test_a_kept_plan_still_drops_endpoints_that_cannot_serve_the_body() -> None:
    relay = _relay()
    assert _names(relay, _request("b/n")) == ["b/n@alt"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(NotFound, match="tool use"):
        relay.plan(_request("b/n", tools=tools))


def test_an_unknown_model_is_refused_every_time() -> None:
    relay = _relay()
    for _ in range(2):
        with pytest.raises(NotFound):
            relay.plan(_request("x/unknown"))
    assert isinstance(relay.plan(_request("b/n"))[1], HealthSnapshot)

"""Capability filtering: endpoints that cannot serve a request are dropped before any upstream call."""

from __future__ import annotations

from typing import Any

import pytest

from polyroute.catalog.catalog import load_catalog
from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing, ProviderSpec
from polyroute.domain.chat import ChatRequest
from polyroute.domain.errors import NotFound
from polyroute.providers.registry import supported_dialects
from polyroute.routing.capabilities import capable_attempts, input_modalities
from polyroute.routing.plan import Attempt, plan_attempts

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = [{"role": "user", "content": [{"type": "text", "text": "what"},
                                       {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]  # fmt: skip
SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


def attempt(provider: str, modalities: tuple[str, ...] = ("text",), params: tuple[str, ...] = ("max_tokens",),
            model_id: str = "a/m") -> Attempt:  # fmt: skip
    endpoint = EndpointSpec(model_id, provider, "up", Pricing(1, 1), 1000, supported_parameters=params,
                            input_modalities=modalities)  # fmt: skip
    model = ModelSpec(model_id, model_id, model_id, 0, "", 1000, (endpoint,))
    return Attempt(model, endpoint, ProviderSpec(provider, provider, "openai", "http://x"))


def request(messages: list[dict[str, Any]] | None = None, **params: Any) -> ChatRequest:
    return ChatRequest("a/m", messages or [{"role": "user", "content": "hi"}], params=params)


def providers(attempts: list[Attempt]) -> list[str]:
    return [a.provider.slug for a in attempts]


def test_a_plain_request_keeps_every_attempt():
    attempts = [attempt("a"), attempt("b")]
    assert capable_attempts(request(), attempts) == attempts


def test_images_only_go_to_endpoints_that_take_image_input():
    attempts = [attempt("text-only"), attempt("vision", modalities=("text", "image"))]
    assert providers(capable_attempts(request(IMAGE), attempts)) == ["vision"]


def test_an_image_with_no_vision_endpoint_left_is_404_naming_the_reason():
    with pytest.raises(NotFound) as caught:
        capable_attempts(request(IMAGE), [attempt("a"), attempt("b")])
    assert caught.value.status == 404
    assert caught.value.message == "No endpoints found that support image input."
    assert caught.value.metadata["unsupported"] == ["image input"]


def test_tools_need_tools_in_supported_parameters():
    attempts = [attempt("plain"), attempt("tools", params=("tools", "tool_choice"))]
    assert providers(capable_attempts(request(tools=[TOOL]), attempts)) == ["tools"]
    with pytest.raises(NotFound, match=r"No endpoints found that support tool use\."):
        capable_attempts(request(tools=[TOOL]), [attempt("plain")])


def test_a_named_tool_choice_needs_tool_choice_support():
    choice = {"type": "function", "function": {"name": "f"}}
    with pytest.raises(NotFound, match="the provided 'tool_choice' value"):
        capable_attempts(request(tools=[TOOL], tool_choice=choice), [attempt("a", params=("tools",))])
    assert capable_attempts(request(tools=[TOOL], tool_choice="auto"), [attempt("a", params=("tools",))])


@pytest.mark.parametrize("params", [("response_format",), ("structured_outputs",)])
def test_json_schema_needs_structured_outputs_or_response_format(params):
    assert capable_attempts(request(response_format=SCHEMA), [attempt("a", params=params)])
    with pytest.raises(NotFound, match=r"structured outputs \(response_format json_schema\)"):
        capable_attempts(request(response_format=SCHEMA), [attempt("a")])


def test_an_endpoint_listing_no_parameters_is_taken_to_support_them_all():
    assert capable_attempts(request(tools=[TOOL], response_format=SCHEMA), [attempt("a", params=())])


def test_requirements_met_only_separately_name_them_all():
    attempts = [attempt("vision", modalities=("text", "image")), attempt("tools", params=("tools",))]
    with pytest.raises(NotFound) as caught:
        capable_attempts(request(IMAGE, tools=[TOOL]), attempts)
    assert caught.value.message == "No endpoints found that support all of image input, tool use."


def test_a_fallback_model_that_can_serve_keeps_the_request_alive():
    attempts = [attempt("a"), attempt("b", modalities=("text", "image"), model_id="b/vision")]
    assert [a.model.id for a in capable_attempts(request(IMAGE), attempts)] == ["b/vision"]


def test_modalities_found_in_content_parts():
    messages = [{"role": "user", "content": [{"type": "input_audio"}, {"type": "file"}, {"type": "image_url"}]},
                {"role": "user", "content": "plain"}]  # fmt: skip
    assert input_modalities(messages) == ["audio", "file", "image"]


def test_with_the_built_in_catalog_a_text_only_model_refuses_images_and_a_vision_model_takes_them():
    env = {"ANTHROPIC_API_KEY": "k", "DEEPSEEK_API_KEY": "k"}
    catalog = load_catalog(env, None, supported_dialects())
    vision = plan_attempts(catalog, ["anthropic/claude-haiku-4-5-20251001"])
    assert capable_attempts(request(IMAGE, tools=[TOOL]), vision)
    text_only = [m.id for m in catalog.list_models() if all(e.input_modalities == ("text",) for e in m.endpoints)
                 and any(e.provider == "deepseek" for e in m.endpoints)]  # fmt: skip
    assert text_only
    with pytest.raises(NotFound, match="image input"):
        capable_attempts(request(IMAGE), plan_attempts(catalog, [text_only[0]]))

"""The Gemini fake speaks generateContent: the official `google-genai` SDK parses everything it sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_upstream import FakeGeminiUpstream

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}),
        )
    ]
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGeminiUpstream]:
    with FakeGeminiUpstream(stall_s=5) as upstream:
        yield upstream


@pytest.fixture(params=["v1", "v1beta"])
def client(fake: FakeGeminiUpstream, request: pytest.FixtureRequest) -> genai.Client:
    fake.clear()
    options = types.HttpOptions(base_url=fake.base_url, api_version=request.param)
    return genai.Client(api_key=fake.api_key, http_options=options)


def test_generate_content_echoes_with_usage(client: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="be brief")
    response = client.models.generate_content(model="mock-model", contents="hello big world", config=config)
    assert response.text == "Echo: hello big world"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (3 + 2, 4)


def test_stream_chunks_concatenate_to_the_answer(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="mock-model", contents="hello big world"))
    assert len(chunks) == 4
    assert "".join(chunk.text or "" for chunk in chunks) == "Echo: hello big world"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata.candidates_token_count == 4  # type: ignore[union-attr]


def test_function_call_with_thoughts_and_signature(client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[WEATHER], thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512)
    )
    response = client.models.generate_content(model="tool-model", contents="weather?", config=config)
    parts = response.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts[0].thought and parts[0].text == "Thinking about: weather?"  # type: ignore[index]
    call = parts[1]  # type: ignore[index]
    assert call.function_call.name == "get_weather" and call.function_call.args == {"city": "test"}
    assert call.thought_signature  # bytes, decoded from base64 by the SDK
    assert response.usage_metadata.thoughts_token_count == 3  # type: ignore[union-attr]


def test_gemini_3_refuses_a_function_call_echoed_without_its_signature(client: genai.Client) -> None:
    history = [
        types.Content(role="user", parts=[types.Part(text="weather?")]),
        types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={}))]),
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
            name="get_weather", response={"content": "sunny"}))]),
    ]  # fmt: skip
    config = types.GenerateContentConfig(tools=[WEATHER])
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-3-mock-model", contents=history, config=config)
    assert caught.value.code == 400 and "thought_signature" in str(caught.value)


def test_unknown_schema_keys_are_refused_like_gemini_does(fake: FakeGeminiUpstream) -> None:
    import requests

    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json",
                             "responseSchema": {"type": "object", "additionalProperties": False}},
    }  # fmt: skip
    response = requests.post(
        f"{fake.base_url}/v1beta/models/mock-model:generateContent",
        json=body,
        headers={"x-goog-api-key": fake.api_key},
        timeout=10,
    )
    assert response.status_code == 400
    assert 'Unknown name "additionalProperties"' in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("model", "status"),
    [("error-400", 400), ("error-429", 429), ("error-500", 500), ("error-503", 503), ("no-such-model", 404)],
)
def test_error_scenarios_use_google_error_bodies(client: genai.Client, model: str, status: int) -> None:
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model=model, contents="hi")
    assert caught.value.code == status
    if status == 429:
        assert caught.value.details["error"]["details"][0]["retryDelay"] == "1s"


def test_wrong_key_is_refused_with_api_key_invalid(fake: FakeGeminiUpstream) -> None:
    sdk = genai.Client(api_key="AIza-wrong", http_options=types.HttpOptions(base_url=fake.base_url))
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model="mock-model", contents="hi")
    assert caught.value.code == 400 and "API key not valid" in str(caught.value)


def test_safety_block_has_no_content(client: genai.Client) -> None:
    response = client.models.generate_content(model="safety", contents="hi")
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY  # type: ignore[index]
    assert response.candidates[0].content is None  # type: ignore[index]


def test_vertex_paths_take_a_bearer_token(fake: FakeGeminiUpstream) -> None:
    import requests

    body = {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}
    url = f"{fake.base_url}/v1/projects/p1/locations/global/publishers/google/models/mock-model:generateContent"
    ok = requests.post(url, json=body, headers={"Authorization": f"Bearer {fake.api_key}"}, timeout=10)
    denied = requests.post(url, json=body, headers={"x-goog-api-key": fake.api_key}, timeout=10)
    assert ok.status_code == 200 and ok.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: hi there"
    assert denied.status_code == 400

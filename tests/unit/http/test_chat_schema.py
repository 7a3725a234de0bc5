"""Request validation names the failing field and keeps pass-through parameters."""

import pytest

from polyroute.domain.chat import Attribution
from polyroute.domain.errors import BadRequest
from polyroute.http.chat_schema import parse_chat_request

MSG = [{"role": "user", "content": "hi"}]


def parse(body):
    return parse_chat_request(body, Attribution())


def test_valid_request_keeps_parameters_for_the_upstream():
    request = parse({"model": "a/b", "messages": MSG, "temperature": 0.5, "seed": 3, "stream": True})
    assert request.model == "a/b" and request.stream
    assert request.params == {"temperature": 0.5, "seed": 3}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "a/b", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "a/b", "messages": MSG, "temperature": 3}, "temperature"),
        ({"model": "a/b", "messages": MSG, "max_tokens": 0}, "max_tokens"),
        ({"model": "a/b", "messages": MSG, "max_tokens": "ten"}, "max_tokens"),
        ({"model": 5, "messages": MSG}, "model"),
        ({"model": "a/b", "messages": MSG, "tools": [{"type": "function"}]}, "tools[0]"),
        ({"model": "a/b", "messages": "hello"}, "messages"),
    ],
)
def test_invalid_fields_are_named_in_the_error(body, field):
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert f"`{field}" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"model": "a/b"},
        {"model": "a/b", "messages": []},
        {"model": "a/b", "messages": MSG, "stop": ["1", "2", "3", "4", "5"]},
        {"model": "a/b", "messages": [{"role": "tool", "content": "x"}]},
        {"model": "a/b", "messages": MSG, "tool_choice": "sometimes"},
    ],
)
def test_semantic_errors_are_bad_requests(body):
    with pytest.raises(BadRequest):
        parse(body)


def test_legacy_prompt_and_models_list_are_accepted():
    request = parse({"models": ["a/b", "c/d"], "prompt": "hi", "max_completion_tokens": 9})
    assert request.model == "a/b" and request.models == ["c/d"]
    assert request.messages == [{"role": "user", "content": "hi"}] and request.max_tokens == 9

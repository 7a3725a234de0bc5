"""Reading OpenAI-shaped requests for other dialects, and fetching remote images for inline-only APIs."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from tests.fakes.image_host import PNG, ImageHost

from polyroute.domain.errors import BadRequest
from polyroute.providers import chat_input as ci
from polyroute.providers import media
from polyroute.settings import Timeouts

TIMEOUTS = Timeouts(connect_s=2, first_byte_s=2, idle_s=2)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"reasoning": {}}, ci.ReasoningAsk()),
        ({"reasoning": {"effort": "high", "exclude": True}}, ci.ReasoningAsk("high", None, True)),
        ({"reasoning": {"max_tokens": 3000}}, ci.ReasoningAsk("medium", 3000)),
        ({"reasoning": {"enabled": False}}, None),
        ({"reasoning": {"effort": "none"}}, None),
        ({"reasoning_effort": "low"}, ci.ReasoningAsk("low")),
        ({"include_reasoning": True}, ci.ReasoningAsk()),
    ],
)
def test_reasoning_requests(params, expected):
    assert ci.reasoning_of(params) == expected


def test_reasoning_budget_is_openrouters_share_of_max_tokens_within_bounds():
    assert ci.ReasoningAsk("high").budget(10_000, minimum=1024, maximum=128_000) == 8000
    assert ci.ReasoningAsk("low").budget(1000, minimum=1024, maximum=128_000) == 1024
    assert ci.ReasoningAsk("max").budget(None, minimum=1024, maximum=32_768) == 32_768


def test_images_data_urls_and_remote_urls():
    assert ci.image_of({"image_url": {"url": "data:image/png;base64,AAA="}}) == ci.Image(
        "data:image/png;base64,AAA=", "image/png", "AAA="
    )
    assert ci.image_of({"image_url": "https://x/a.JPG?size=2"}).media_type == "image/jpeg"
    with pytest.raises(BadRequest):
        ci.image_of({"image_url": {}})


def test_unsupported_parameters_are_dropped_but_stop_and_user_always_pass():
    params = {"temperature": 1, "top_k": 3, "stop": "x", "user": "u"}
    assert ci.supported_params(params, ("temperature",)) == {"temperature": 1, "stop": "x", "user": "u"}
    assert ci.supported_params(params, ()) == params


@pytest.fixture(scope="module")
def host() -> Iterator[ImageHost]:
    with ImageHost() as server:
        yield server


async def test_remote_images_are_inlined_and_redirects_followed(host: ImageHost):
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "t"},
                                     {"type": "image_url", "image_url": {"url": f"{host.root_url}/redirect",
                                                                         "detail": "low"}}]},
    ]  # fmt: skip
    async with aiohttp.ClientSession() as session:
        out = await media.inline_remote_images(messages, session, TIMEOUTS, allow_private=True)
    part = out[1]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/png;base64,") and part["image_url"]["detail"] == "low"
    assert ci.image_of(part).data is not None and out[0] is messages[0]
    assert messages[1]["content"][1]["image_url"]["url"].startswith("http")  # the input is not changed


async def test_private_addresses_are_not_fetched_by_default(host: ImageHost):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BadRequest, match="not on a public address"):
            await media.fetch_data_url(f"{host.root_url}/cat.png", session, TIMEOUTS)


async def test_not_an_image_or_too_large_is_a_bad_request(host: ImageHost, monkeypatch: pytest.MonkeyPatch):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BadRequest, match="not an image"):
            await media.fetch_data_url(f"{host.root_url}/page.html", session, TIMEOUTS, allow_private=True)
        with pytest.raises(BadRequest, match="HTTP 404"):
            await media.fetch_data_url(f"{host.root_url}/missing.png", session, TIMEOUTS, allow_private=True)
        monkeypatch.setattr(media, "MAX_IMAGE_BYTES", len(PNG) - 1)
        with pytest.raises(BadRequest, match="larger than"):
            await media.fetch_data_url(f"{host.root_url}/cat.png", session, TIMEOUTS, allow_private=True)

"""A body no endpoint of the model could serve is refused before any upstream call, naming why;
when another endpoint of the model can serve it, that endpoint gets the request."""

from __future__ import annotations

import pytest
from tests.support.gateway import acme_config_toml

IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

EXTRA = """
[[models]]
id = "acme/text-only"
name = "Acme: Text Only"
context_length = 8192
supported_parameters = ["max_tokens", "temperature"]
[[models.endpoints]]
provider = "acme"
upstream_id = "mock-model"
prompt_price = "0.50"
completion_price = "1.50"

[[models]]
id = "acme/mixed"
name = "Acme: Mixed"
context_length = 8192
[[models.endpoints]]
provider = "acme-bad"
upstream_id = "error-500"
prompt_price = "0.10"
completion_price = "0.10"
[[models.endpoints]]
provider = "acme"
upstream_id = "mock-model"
input_modalities = ["text", "image"]
prompt_price = "0.50"
completion_price = "1.50"
"""


@pytest.fixture(scope="module")
def gateway_config(fake_upstream):
    return acme_config_toml(fake_upstream.base_url, extra_toml=EXTRA)


@pytest.fixture(scope="module", params=["sqlite"])
def database_kind(request):
    return request.param


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": IMAGE}, "No endpoints found that support image input."),
        (
            {"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS},
            "No endpoints found that support tool use.",
        ),
    ],
)
def test_unservable_body_is_404_before_any_upstream_call(http, fake_upstream, body, message):
    response = http.post("chat/completions", json={"model": "acme/text-only", **body})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == message
    assert fake_upstream.chat_requests() == []


def test_the_endpoint_that_can_serve_it_gets_the_request(http, fake_upstream):
    response = http.post("chat/completions", json={"model": "acme/mixed", "messages": IMAGE})
    assert response.status_code == 200, response.text
    assert [r.body["model"] for r in fake_upstream.chat_requests()] == ["mock-model"]  # error-500 never tried

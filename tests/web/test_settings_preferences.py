"""The Settings page's provider-preferences form (the real app through TestClient): what it stores,
what it refuses (a form error, never a 500), and the field-by-field merge under a request's own object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from polyroute.accounts.provider_defaults import merge_provider
from polyroute.routing.preferences import parse_preferences
from tests.web.conftest import sign_up

Clients = Callable[[], TestClient]
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}  # a checkbox group repeats a name


def stored(client: TestClient, email: str) -> Any:
    async def read() -> Any:
        from sqlalchemy import select

        from polyroute.db.tables import accounts

        async with client.app.state.services.engine.connect() as conn:  # type: ignore[attr-defined]
            query = select(accounts.c.provider_preferences).where(accounts.c.email == email)
            return (await conn.execute(query)).scalar_one()

    text = client.portal.call(read)  # type: ignore[union-attr]
    return None if text is None else json.loads(text)


def providers_of(client: TestClient) -> list[str]:
    return sorted(client.app.state.services.catalog.providers)  # type: ignore[attr-defined]


def test_the_form_stores_openrouters_provider_object(app_client: Clients) -> None:
    client = app_client()
    csrf = sign_up(client, "p@example.com")
    ignored = providers_of(client)[:2]
    form = [
        ("csrf_token", csrf),
        ("sort", "throughput"),
        ("data_collection", "deny"),
        ("order", f" {ignored[0].upper()} "),
        ("max_prompt", "0.5"),
        ("max_completion", "2"),
        ("extra", '{"quantizations": ["fp8"], "max_price": {"request": 0.01}}'),
        *[("ignore", slug) for slug in ignored],
    ]  # fmt: skip  (no allow_fallbacks: the checkbox is unticked)
    response = client.post("/settings/providers", content=urlencode(form), headers=FORM_HEADERS)
    assert response.status_code == 200, response.text
    assert "Provider preferences saved" in response.text
    saved = stored(client, "p@example.com")
    assert saved == {
        "sort": "throughput", "data_collection": "deny", "allow_fallbacks": False, "ignore": ignored,
        "order": [ignored[0]], "max_price": {"prompt": 0.5, "completion": 2, "request": 0.01},
        "quantizations": ["fp8"],
    }  # fmt: skip
    parse_preferences(saved)  # the API's parser takes it as it is
    page = client.get("/settings").text  # shown back in the form
    assert '<option value="throughput" selected>' in page and 'value="0.5"' in page
    assert f'value="{ignored[1]}" checked' in page and "quantizations" in page
    assert 'name="allow_fallbacks" type="checkbox" value="1" checked' not in page
    # Saving the defaults clears the stored object.
    assert client.post("/settings/providers", data={"csrf_token": csrf, "allow_fallbacks": "1"}).status_code == 200
    assert stored(client, "p@example.com") is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_prompt": "cheap"}, "Max prompt price must be a number"),
        ({"max_completion": "-1"}, "Max completion price must be a number"),
        ({"order": "no-such-provider"}, "no provider called"),
        ({"ignore": "no-such-provider"}, "no provider called"),
        ({"sort": "random"}, "Sort: pick price"),
        ({"data_collection": "sometimes"}, "Data collection"),
        ({"extra": "[1, 2]"}, "must be a JSON object"),
        ({"extra": "{not json"}, "must be a JSON object"),
        ({"extra": '{"sort": "price"}'}, "with the form above"),
        ({"extra": '{"colour": "blue"}'}, "`provider.colour` is not a provider preference"),
        ({"extra": '{"quantizations": "fp8"}'}, "`provider.quantizations` must be a list of strings"),
        ({"extra": '{"max_price": {"request": "free"}}'}, "`provider.max_price.request` must be a number"),
    ],
)
def test_bad_values_are_a_form_error_not_a_500(app_client: Clients, fields: dict[str, str], message: str) -> None:
    client = app_client()
    csrf = sign_up(client, "bad@example.com")
    response = client.post("/settings/providers", data={"csrf_token": csrf, "allow_fallbacks": "1", **fields})
    assert response.status_code == 400
    assert message in response.text.replace("&#96;", "`"), response.text
    assert stored(client, "bad@example.com") is None  # nothing saved
    if "extra" in fields:  # what was typed is shown again
        assert fields["extra"].replace('"', "&#34;")[:8] in response.text


def test_the_merge_is_field_by_field_with_the_request_winning() -> None:
    base = {"sort": "price", "ignore": ["a"], "max_price": {"prompt": 1, "completion": 2}, "data_collection": "deny"}
    assert merge_provider(base, None) == base
    assert merge_provider(None, {"only": ["b"]}) == {"only": ["b"]}
    assert merge_provider({}, None) is None
    merged = merge_provider(base, {"ignore": [], "max_price": {"prompt": 5}, "sort": None})
    expected = {"sort": None, "ignore": [], "max_price": {"prompt": 5, "completion": 2}, "data_collection": "deny"}
    assert merged == expected
    assert base["max_price"] == {"prompt": 1, "completion": 2}  # the cached base is never changed

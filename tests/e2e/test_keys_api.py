"""The management API (`/keys`, `/keys/{hash}`) in OpenRouter's shapes, scoped to the caller's account.

Responses go through the contract checker; refusals the spec does not document for these paths
(403 for inference keys) are checked with plain requests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from tests.support.contract import ContractSession

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def admin(gateway, management_key, contract_checker):
    with ContractSession(gateway.base_url, management_key, contract_checker) as session:
        yield session


def chat(gateway, key: str, **extra) -> requests.Response:
    body = {"model": "acme/mock-model", "messages": MSG, **extra}
    return requests.post(
        f"{gateway.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_create_returns_the_key_once_and_it_works(admin, gateway):
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    response = admin.post(
        "keys",
        json={
            "name": "ci",
            "limit": 1.5,
            "limit_reset": "weekly",
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
        },
    )
    assert response.status_code == 201
    body = response.json()
    data = body["data"]
    assert body["key"].startswith("sk-pr-v1-") and data["label"] in (f"{body['key'][:12]}...{body['key'][-4:]}",)
    assert (data["name"], data["limit"], data["limit_remaining"], data["limit_reset"]) == ("ci", 1.5, 1.5, "weekly")
    assert data["usage"] == 0 and data["disabled"] is False
    assert data["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert chat(gateway, body["key"]).status_code == 200
    fetched = admin.get(f"keys/{data['hash']}").json()["data"]
    assert fetched["usage"] > 0 and fetched["usage"] == fetched["usage_weekly"] == fetched["usage_daily"]
    assert fetched["limit_remaining"] == pytest.approx(1.5 - fetched["usage"], abs=1e-12)


def test_list_shows_the_accounts_inference_keys(admin, api_key_record):
    created = admin.post("keys", json={"name": "listed"}).json()["data"]
    hashes = [key["hash"] for key in admin.get("keys").json()["data"]]
    assert created["hash"] in hashes and api_key_record["hash"] in hashes
    admin.patch(f"keys/{created['hash']}", json={"disabled": True})
    assert created["hash"] not in [key["hash"] for key in admin.get("keys").json()["data"]]
    with_disabled = admin.get("keys", params={"include_disabled": "true"}).json()["data"]
    assert created["hash"] in [key["hash"] for key in with_disabled]
    assert admin.get("keys", params={"offset": 10_000}).json()["data"] == []


def test_patch_changes_limit_and_disables_at_once(admin, gateway):
    body = admin.post("keys", json={"name": "patched"}).json()
    key, key_hash = body["key"], body["data"]["hash"]
    assert chat(gateway, key).status_code == 200
    updated = admin.patch(f"keys/{key_hash}", json={"name": "renamed", "limit": 0.000001, "limit_reset": "daily"})
    data = updated.json()["data"]
    assert (data["name"], data["limit"], data["limit_reset"]) == ("renamed", 0.000001, "daily")
    refused = chat(gateway, key)
    assert refused.status_code == 402 and refused.json()["error"]["metadata"]["limit_source"] == "key"
    admin.patch(f"keys/{key_hash}", json={"limit": None})
    assert chat(gateway, key).status_code == 200
    admin.patch(f"keys/{key_hash}", json={"disabled": True})
    assert chat(gateway, key).status_code == 401
    admin.patch(f"keys/{key_hash}", json={"disabled": False})
    assert chat(gateway, key).status_code == 200


def test_rate_limit_extension_is_stored_returned_and_enforced(admin, gateway):
    body = admin.post("keys", json={"name": "rated", "rate_limit": {"requests_per_minute": 3}}).json()
    key, key_hash = body["key"], body["data"]["hash"]
    assert body["data"]["rate_limit"] == {"requests_per_minute": 3, "tokens_per_minute": None}
    assert [chat(gateway, key).status_code for _ in range(5)] == [200, 200, 200, 429, 429]
    refused = chat(gateway, key)
    assert refused.json()["error"]["message"] == "Rate limit exceeded: key-requests-per-min."
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # PATCH: only the fields given change; null hands the key back to the instance default (none here).
    patched = admin.patch(f"keys/{key_hash}", json={"rate_limit": {"tokens_per_minute": 5000}}).json()["data"]
    assert patched["rate_limit"] == {"requests_per_minute": 3, "tokens_per_minute": 5000}
    cleared = admin.patch(f"keys/{key_hash}", json={"rate_limit": {"requests_per_minute": None}}).json()["data"]
    assert cleared["rate_limit"] == {"requests_per_minute": None, "tokens_per_minute": 5000}
    assert chat(gateway, key).status_code == 200
    assert admin.get(f"keys/{key_hash}").json()["data"]["rate_limit"]["tokens_per_minute"] == 5000
    reset = admin.patch(f"keys/{key_hash}", json={"rate_limit": None}).json()["data"]
    assert reset["rate_limit"] == {"requests_per_minute": None, "tokens_per_minute": None}
    listed = {k["hash"]: k for k in admin.get("keys").json()["data"]}
    assert listed[key_hash]["rate_limit"] == {"requests_per_minute": None, "tokens_per_minute": None}


@pytest.mark.parametrize(
    "rate_limit",
    [
        {"requests_per_minute": -1},
        {"requests_per_minute": 10**12},
        {"requests_per_minute": 2.5},
        {"requests_per_minute": "10"},
        {"requests_per_minute": True},
        {"tokens_per_minute": -5},
        {"tokens_per_minute": [100]},
        {"rpm": 10},
        10,
        "fast",
    ],
)
def test_bad_rate_limits_are_400_on_create_and_patch(admin, rate_limit):
    created = admin.post("keys", json={"name": "x", "rate_limit": rate_limit})
    assert created.status_code == 400 and "rate_limit" in created.json()["error"]["message"]
    key_hash = admin.post("keys", json={"name": "victim"}).json()["data"]["hash"]
    patched = admin.patch(f"keys/{key_hash}", json={"rate_limit": rate_limit})
    assert patched.status_code == 400 and "rate_limit" in patched.json()["error"]["message"]
    assert patched.json()["error"]["code"] == 400
    assert admin.get(f"keys/{key_hash}").json()["data"]["rate_limit"]["requests_per_minute"] is None


def test_delete_revokes(admin, gateway):
    body = admin.post("keys", json={"name": "doomed"}).json()
    assert admin.delete(f"keys/{body['data']['hash']}").json() == {"deleted": True}
    assert chat(gateway, body["key"]).status_code == 401
    assert admin.get(f"keys/{body['data']['hash']}").status_code == 404


def test_keys_of_another_account_are_invisible(admin, gateway):
    stranger = gateway.create_key(name="stranger", account="stranger@example.com")
    other_admin = gateway.create_key(name="other-admin", account="stranger@example.com", management=True)["key"]
    assert admin.get(f"keys/{stranger['hash']}").status_code == 404
    assert admin.patch(f"keys/{stranger['hash']}", json={"disabled": True}).status_code == 404
    assert admin.delete(f"keys/{stranger['hash']}").status_code == 404
    headers = {"Authorization": f"Bearer {other_admin}"}
    listed = requests.get(f"{gateway.base_url}/keys", headers=headers, timeout=10).json()["data"]
    assert [key["hash"] for key in listed] == [stranger["hash"]]
    assert chat(gateway, stranger["key"]).status_code == 200  # untouched


def test_management_keys_are_not_managed_here(admin, gateway, management_key):
    from polyroute.accounts.keys import hash_key

    assert admin.get(f"keys/{hash_key(management_key)}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "keys"),
        ("post", "keys"),
        ("get", "keys/" + "a" * 64),
        ("delete", "keys/" + "a" * 64),
        ("get", "activity"),
    ],
)
def test_inference_keys_get_403_on_management_endpoints(gateway, api_key, method, path):
    response = requests.request(
        method,
        f"{gateway.base_url}/{path}",
        json={"name": "x"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only management keys can perform this operation"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "name"),
        ({"name": " "}, "name"),
        ({"name": "x", "limit": -1}, "negative"),
        ({"name": "x", "limit": "lots"}, "limit"),
        ({"name": "x", "limit_reset": "hourly"}, "limit_reset"),
        ({"name": "x", "expires_at": "2099-01-01T00:00:00+02:00"}, "UTC"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "future"),
        ({"name": "x", "expires_at": "soon"}, "expires_at"),
    ],
)
def test_bad_key_bodies_are_400_naming_the_field(admin, body, needle):
    response = admin.post("keys", json=body)
    assert response.status_code == 400 and needle in response.json()["error"]["message"]


def test_no_key_is_401(gateway):
    assert requests.get(f"{gateway.base_url}/keys", timeout=10).status_code == 401

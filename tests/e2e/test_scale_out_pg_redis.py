"""Scale-out: two gateway processes on different ports sharing one PostgreSQL and one Redis.

A key limited to 10 requests/minute admits exactly 10 of a 200-request burst spread over both;
a burst against one account's balance overspends by 0; a key revoked on one process is refused
by the other within 1 s (through the cache bus, with the key cache TTL raised far above that).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix
from tests.support.scale_out import account_id_of, burst, chat_body, ledger_audit, postgres_database, spread

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(
    tmp_path: Path, gateway_factory: Callable[..., GatewayProcess]
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis_url = shared_redis_url()
    prefix = unique_prefix()
    env = {
        "POLYROUTE_REDIS_URL": redis_url,
        "POLYROUTE_REDIS_PREFIX": prefix,
        "POLYROUTE_KEY_RPM": "10",
        "POLYROUTE_KEY_CACHE_TTL_S": "30",  # only the cache bus can make revocation reach the other process in 1 s
    }
    with postgres_database(tmp_path) as database_url:
        first = gateway_factory(env=env, database_url=database_url)
        second = gateway_factory(env=env, database_url=database_url)
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()
            delete_prefix(redis_url, prefix)


def test_a_burst_over_two_processes_admits_exactly_the_key_limit(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    first = pair[0]
    key = first.create_key(name="rpm", account="rpm@example.com")["key"]
    replies, took_s = burst(spread(pair, [key], 200))
    statuses = [reply.status for reply in replies]
    admitted = statuses.count(200)
    print(f"200-request burst over 2 processes in {took_s:.2f} s: {admitted} admitted, {statuses.count(429)} refused")
    # GCRA with limit 10/min refills one slot every 6 s: a burst shorter than that admits exactly 10.
    assert 10 <= admitted <= 10 + int(took_s // 6), statuses
    assert statuses.count(429) == 200 - admitted
    refused = next(reply for reply in replies if reply.status == 429)
    assert refused.body["error"]["code"] == 429
    assert refused.body["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
    assert refused.body["error"]["message"] == "Rate limit exceeded: key-requests-per-min."
    assert refused.headers["x-ratelimit-limit"] == "10"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["x-ratelimit-reset"]) > time.time() * 1000 - 5_000


def test_a_key_limit_changed_on_one_process_governs_the_next_burst_on_the_other(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = pair
    manager = first.create_key(name="adm", account="per@example.com", management=True)["key"]
    admin = {"Authorization": f"Bearer {manager}"}
    created = first.create_key(name="per-key", account="per@example.com")
    key, key_hash = created["key"], created["hash"]
    # The second process caches the key (TTL 30 s): only the cache bus can bring it the change.
    assert requests.get(f"{second.base_url}/key", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok
    for limit, count in ((3, 60), (25, 120)):
        body = {"rate_limit": {"requests_per_minute": limit}}
        patched = requests.patch(f"{first.base_url}/keys/{key_hash}", json=body, headers=admin, timeout=10)
        assert patched.status_code == 200 and patched.json()["data"]["rate_limit"]["requests_per_minute"] == limit
        time.sleep(0.5)  # the invalidation is published and delivered (measured ~50 ms)
        replies, took_s = burst([(second.base_url, key)] * count)
        statuses = [reply.status for reply in replies]
        admitted = statuses.count(200)
        print(f"limit {limit}/min set on the first process: {admitted} of {count} admitted by the second")
        assert limit <= admitted <= limit + int(took_s // (60 / limit)), statuses
        assert set(statuses) == {200, 429}
        refused = next(reply for reply in replies if reply.status == 429)
        assert refused.headers["x-ratelimit-limit"] == str(limit)


def test_a_concurrent_burst_on_one_account_overspends_by_zero(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    first, second = pair
    account = "money@example.com"
    # About five requests' worst case (16 completion tokens at $1.50/M plus the prompt) of credit.
    created = [first.create_key(name="m0", account=account, credits="0.00012")]
    created += [second.create_key(name=f"m{i}", account=account, credits=None) for i in (1, 2)]
    keys = [entry["key"] for entry in created]
    replies, _ = burst(spread(pair, keys, 30))  # 10 per key: the rate limit admits them all
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) >= 1 and statuses.count(402) >= 1, statuses
    assert set(statuses) <= {200, 402}, statuses
    audit = ledger_audit(first, account_id_of(first, created[0]["hash"]))
    balance = audit["balance"]
    assert balance["spent_pusd"] <= balance["credits_pusd"], balance  # overspend: 0
    assert balance["reserved_pusd"] == 0 and audit["open_holds"] == 0
    assert all(n == 1 for n, _ in audit["terminal"].values())  # one terminal entry per request
    assert set(audit["terminal"]) == set(audit["reserves"])
    served = {reply.headers["x-generation-id"] for reply in replies if reply.status == 200}
    assert served <= set(audit["terminal"])
    charged = sum(round(reply.body["usage"]["cost"] * 10**12) for reply in replies if reply.status == 200)
    assert abs(charged - balance["spent_pusd"]) <= len(served)  # cost is reported in USD floats


def test_a_key_revoked_on_one_process_is_refused_by_the_other_within_a_second(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = pair
    admin = first.create_key(name="admin", account="rev@example.com", management=True)["key"]
    victim = first.create_key(name="victim", account="rev@example.com")
    auth = {"Authorization": f"Bearer {victim['key']}"}
    for gateway in pair:  # both processes now hold the key in their cache
        assert requests.get(f"{gateway.base_url}/key", headers=auth, timeout=10).status_code == 200
    revoked = requests.delete(
        f"{first.base_url}/keys/{victim['hash']}", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    )
    assert revoked.status_code == 200
    revoked_at = time.monotonic()
    status = 200
    while time.monotonic() - revoked_at < 5:
        status = requests.get(f"{second.base_url}/key", headers=auth, timeout=10).status_code
        if status == 401:
            break
        time.sleep(0.02)
    elapsed_s = time.monotonic() - revoked_at
    print(f"revoked key refused by the other process after {elapsed_s * 1000:.0f} ms")
    assert status == 401 and elapsed_s < 1.0
    reply = requests.post(f"{second.base_url}/chat/completions", json=chat_body(), headers=auth, timeout=10)
    assert reply.status_code == 401

"""The free tier as OpenRouter defines it, for `:free` model requests: per account (never per key),
20 requests a minute, and 50 a UTC day (1000 once the account bought $10 of credits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.gateway import GatewayProcess, acme_config_toml
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix
from tests.support.scale_out import FREE_MODEL_TOML, burst, chat_body, postgres_database, spread

FREE = chat_body(model="acme/gift:free")


@pytest.fixture
def free_config(fake_upstream: object) -> str:
    return acme_config_toml(fake_upstream.base_url, extra_toml=FREE_MODEL_TOML)  # type: ignore[attr-defined]


def test_free_models_allow_twenty_requests_a_minute_per_account(
    gateway_factory: Callable[..., GatewayProcess], free_config: str
) -> None:
    gateway = gateway_factory(config_toml=free_config)  # one process, SQLite, in-memory limits
    keys = [gateway.create_key(name=f"k{i}", account="minute@example.com", credits=None)["key"] for i in range(2)]
    replies, took_s = burst(spread([gateway], keys, 30), FREE)
    statuses = [reply.status for reply in replies]
    assert 20 <= statuses.count(200) <= 20 + int(took_s // 3), statuses  # one slot refills every 3 s
    refused = next(reply for reply in replies if reply.status == 429)
    assert refused.body["error"]["message"] == "Rate limit exceeded: free-models-per-min."
    assert refused.headers["x-ratelimit-limit"] == "20"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    paid = burst(spread([gateway], keys[:1], 1), chat_body())[0][0]
    assert paid.status != 429  # paid models have no platform rate limit


@pytest.fixture
def shared_pair(
    tmp_path: Path, gateway_factory: Callable[..., GatewayProcess], free_config: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis_url = shared_redis_url()
    prefix = unique_prefix()
    # The per-minute cap is raised so that the daily cap is what a burst meets; the day cap is the default 50,
    # and the "bought credits" cap is lowered from 1000 to 70 to keep the burst short.
    env = {
        "POLYROUTE_REDIS_URL": redis_url,
        "POLYROUTE_REDIS_PREFIX": prefix,
        "POLYROUTE_FREE_RPM": "100000",
        "POLYROUTE_FREE_RPD_WITH_CREDITS": "70",
    }
    with postgres_database(tmp_path) as database_url:
        pair = (
            gateway_factory(config_toml=free_config, env=env, database_url=database_url),
            gateway_factory(config_toml=free_config, env=env, database_url=database_url),
        )
        try:
            yield pair
        finally:
            for gateway in pair:
                gateway.stop()
            delete_prefix(redis_url, prefix)


@pytest.mark.postgres
def test_three_keys_on_one_account_share_the_daily_cap_exactly_across_two_processes(
    shared_pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = shared_pair
    keys = [first.create_key(name=f"k{i}", account="day@example.com", credits=None)["key"] for i in range(3)]
    replies, _ = burst(spread(shared_pair, keys, 90), FREE)
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 50 and statuses.count(429) == 40, statuses
    refused = next(reply for reply in replies if reply.status == 429)
    assert refused.body["error"]["message"] == (
        "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 70 free model requests per day"
    )
    assert refused.headers["x-ratelimit-limit"] == "50"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    seconds_to_utc_midnight = 86_400 - int(time.time()) % 86_400
    assert abs(int(refused.headers["retry-after"]) - seconds_to_utc_midnight) <= 60
    # A fourth key on the same account gains nothing.
    extra = second.create_key(name="k4", account="day@example.com", credits=None)["key"]
    assert burst(spread([second], [extra], 1), FREE)[0][0].status == 429


@pytest.mark.postgres
def test_an_account_that_bought_ten_dollars_gets_the_larger_daily_cap(
    shared_pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, _ = shared_pair
    keys = [first.create_key(name="k0", account="paid@example.com", credits="10")["key"]]
    keys += [first.create_key(name="k1", account="paid@example.com", credits=None)["key"]]
    replies, _ = burst(spread(shared_pair, keys, 90), FREE)
    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 70, statuses
    refused = next(reply for reply in replies if reply.status == 429)
    assert refused.body["error"]["message"] == "Rate limit exceeded: free-models-per-day."

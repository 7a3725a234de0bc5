"""End-to-end fixtures: the real gateway process on SQLite and PostgreSQL, the fake upstream behind it,
API keys, and clients (openai sync/async, requests) that check every response against the OpenRouter spec.

A test module can override `gateway_config` / `gateway_env` to run its gateway with other settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.contract import (
    ContractChecker,
    ContractSession,
    default_checker,
    validating_async_http_client,
    validating_http_client,
)
from tests.support.databases import fresh_database
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml

# Short timeouts so failure scenarios finish quickly: `slow-8000` exceeds the first-byte bound,
# `stall-after-<n>` the idle bound; keep-alive comments flow every second while waiting.
E2E_TIMEOUTS = {
    "POLYROUTE_FIRST_BYTE_TIMEOUT_S": "5",
    "POLYROUTE_IDLE_TIMEOUT_S": "2",
    "POLYROUTE_KEEPALIVE_S": "1",
}
ACCOUNT = "user@example.com"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_upstream_state(fake_upstream: FakeOpenAIUpstream) -> None:
    fake_upstream.clear()
    fake_upstream.delay_s = 0.0


@pytest.fixture(scope="session")
def gateway_config(fake_upstream: FakeOpenAIUpstream) -> str:
    return acme_config_toml(fake_upstream.base_url)


@pytest.fixture(scope="session")
def gateway_env(fake_upstream: FakeOpenAIUpstream) -> dict[str, str]:
    return {UPSTREAM_KEY_ENV: fake_upstream.api_key, **E2E_TIMEOUTS}


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Sync wrapper over the async `fresh_database`, on a private loop that outlives the `yield`."""
    loop = asyncio.new_event_loop()
    manager = fresh_database(kind, tmp_path)
    try:
        url = loop.run_until_complete(manager.__aenter__())
        try:
            yield url
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def gateway_database_url(database_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """None for SQLite (the default file under POLYROUTE_DATA_DIR), else a fresh PostgreSQL database."""
    if database_kind == "sqlite":
        yield None
        return
    with _database(database_kind, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(
    database_kind: str,
    gateway_database_url: str | None,
    gateway_config: str,
    gateway_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp(f"gateway-{database_kind}")
    with GatewayProcess(workdir, gateway_config, gateway_env, gateway_database_url) as process:
        yield process


@pytest.fixture
def gateway_factory(
    tmp_path: Path, gateway_config: str, gateway_env: dict[str, str]
) -> Iterator[Callable[..., GatewayProcess]]:
    """Start extra gateways (own SQLite unless `database_url` is given); all are stopped afterwards."""
    started: list[GatewayProcess] = []

    def start(
        config_toml: str | None = None, env: Mapping[str, str] | None = None, database_url: str | None = None
    ) -> GatewayProcess:
        workdir = tmp_path / f"gateway-{len(started)}"
        process = GatewayProcess(workdir, config_toml or gateway_config, {**gateway_env, **(env or {})}, database_url)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def api_key_record(gateway: GatewayProcess) -> dict[str, Any]:
    """The JSON of `keys create` for a normal key (`key`, `hash`, ...)."""
    return gateway.create_key(name="e2e", account=ACCOUNT)


@pytest.fixture(scope="module")
def api_key(api_key_record: dict[str, Any]) -> str:
    return str(api_key_record["key"])


@pytest.fixture(scope="module")
def management_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(name="e2e-management", account=ACCOUNT, management=True)["key"])


@pytest.fixture(scope="session")
def contract_checker() -> ContractChecker:
    return default_checker()


@pytest.fixture
def openai_client(gateway: GatewayProcess, api_key: str, contract_checker: ContractChecker) -> Iterator[openai.OpenAI]:
    """No SDK retries: a test sees exactly what the gateway answered."""
    http_client = validating_http_client(contract_checker)
    with openai.OpenAI(
        base_url=gateway.base_url, api_key=api_key, http_client=http_client, max_retries=0, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def async_openai_client(
    gateway: GatewayProcess, api_key: str, contract_checker: ContractChecker
) -> AsyncIterator[openai.AsyncOpenAI]:
    http_client = validating_async_http_client(contract_checker)
    async with openai.AsyncOpenAI(
        base_url=gateway.base_url, api_key=api_key, http_client=http_client, max_retries=0, timeout=30
    ) as client:
        yield client


@pytest.fixture
def http(gateway: GatewayProcess, api_key: str, contract_checker: ContractChecker) -> Iterator[ContractSession]:
    """requests, with the key set; relative URLs (`"models"`) resolve against `/api/v1/`."""
    with ContractSession(gateway.base_url, api_key, contract_checker) as session:
        yield session

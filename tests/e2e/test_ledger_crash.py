"""The gateway killed with requests in flight (SIGKILL: nothing flushed, nothing settled): after a
restart every reservation is closed (voided, charging nothing), the books balance, and each voided
request has a generation record saying so. A clean shutdown instead settles in-flight requests.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from tests.support.gateway import GatewayProcess

MSG = [{"role": "user", "content": "hi"}]
LEASE_S = 2  # a short lease so the test waits seconds, not a minute
STREAMS, BLOCKING = 6, 3


@pytest.fixture
def crash_gateway(
    database_kind: str,
    gateway_database_url: str | None,
    gateway_config: str,
    gateway_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
):
    workdir = tmp_path_factory.mktemp(f"crash-{database_kind}")
    # A long idle timeout keeps the stalled streams in flight until the kill.
    env = {**gateway_env, "POLYROUTE_RESERVATION_LEASE_S": str(LEASE_S), "POLYROUTE_IDLE_TIMEOUT_S": "60"}
    process = GatewayProcess(workdir, gateway_config, env, gateway_database_url)
    with process:
        yield process


def fire(gateway: GatewayProcess, key: str, body: dict[str, Any], outcomes: list[Any]) -> None:
    try:
        response = requests.post(
            f"{gateway.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            stream=bool(body.get("stream")),
        )
        outcomes.append(response.status_code)
        for _ in response.iter_content(None):
            pass
    except requests.RequestException as error:
        outcomes.append(type(error).__name__)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def audit(gateway: GatewayProcess, account_id: int) -> dict[str, Any]:
    refs: dict[str, dict[str, int]] = {}
    for row in gateway.sql("SELECT ref, kind, amount_pusd FROM ledger_entries WHERE account_id = :a", a=account_id):
        refs.setdefault(row["ref"], {})[row["kind"]] = int(row["amount_pusd"])
    [balance] = gateway.sql("SELECT * FROM account_balances WHERE account_id = :a", a=account_id)
    open_rows = gateway.sql("SELECT ref FROM reservations WHERE account_id = :a", a=account_id)
    return {"refs": refs, "balance": balance, "open": [row["ref"] for row in open_rows]}


def test_after_kill_9_and_restart_every_reservation_is_voided(crash_gateway, fake_upstream):
    gateway = crash_gateway
    record = gateway.create_key(name="crash", account="crash@example.com", credits="5")
    account_id = record["account_id"]
    outcomes: list[Any] = []
    bodies = [{"model": "acme/stall-after-2", "messages": MSG, "stream": True}] * STREAMS
    bodies += [{"model": "acme/slow-8000", "messages": MSG}] * BLOCKING  # waiting for a first byte
    threads = [threading.Thread(target=fire, args=(gateway, record["key"], body, outcomes)) for body in bodies]
    for thread in threads:
        thread.start()
    in_flight = lambda: len(audit(gateway, account_id)["open"]) == len(bodies)  # noqa: E731
    assert wait_until(in_flight, 10), audit(gateway, account_id)
    time.sleep(0.3)  # the streams have delivered their tokens and stalled

    gateway.kill()
    for thread in threads:
        thread.join(10)
    assert len(audit(gateway, account_id)["open"]) == len(bodies)  # the crash left them reserved
    gateway.start()

    assert wait_until(lambda: not audit(gateway, account_id)["open"], 3 * LEASE_S + 5), "reservations leaked"
    state = audit(gateway, account_id)
    assert len(state["refs"]) == len(bodies) + 1  # every request, and the grant
    for ref, kinds in state["refs"].items():
        if ref.startswith("grant-"):
            continue
        assert set(kinds) == {"reserve", "void"} and kinds["void"] == kinds["reserve"], (ref, kinds)
    balance = state["balance"]
    assert (balance["spent_pusd"], balance["reserved_pusd"]) == (0, 0)
    assert balance["credits_pusd"] == 5 * 10**12
    voided = gateway.sql("SELECT id, status, model FROM generations WHERE account_id = :a", a=account_id)
    assert sorted(row["status"] for row in voided) == ["void"] * len(bodies)
    # The restarted gateway serves the same key at once.
    after = requests.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "acme/mock-model", "messages": MSG},
        headers={"Authorization": f"Bearer {record['key']}"},
        timeout=10,
    )
    assert after.status_code == 200


def test_a_clean_shutdown_settles_requests_in_flight(crash_gateway):
    gateway = crash_gateway
    record = gateway.create_key(name="drain", account="drain@example.com", credits="5")
    outcomes: list[Any] = []
    body = {"model": "acme/slow-2500", "messages": MSG}
    threads = [threading.Thread(target=fire, args=(gateway, record["key"], body, outcomes)) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(audit(gateway, record["account_id"])["open"]) == 2, 10)
    gateway.stop()  # SIGTERM: stop accepting, let in-flight requests finish, then settle and exit
    for thread in threads:
        thread.join(10)
    assert outcomes == [200, 200]
    state = audit(gateway, record["account_id"])
    assert state["open"] == []
    settled = [kinds for ref, kinds in state["refs"].items() if not ref.startswith("grant-")]
    assert len(settled) == 2 and all(set(kinds) == {"reserve", "settle"} for kinds in settled)
    assert state["balance"]["spent_pusd"] == sum(kinds["settle"] for kinds in settled) > 0

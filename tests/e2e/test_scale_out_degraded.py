"""Degraded modes during a load run over two processes (private Redis, PostgreSQL behind a cuttable proxy).

Redis stops: requests keep being served (rate limits fall back to per-process buckets), money
unaffected. PostgreSQL goes away: paid requests fail fast with 503 and Retry-After, nothing is served
unbilled. Both come back: service resumes with no restart. Afterwards every request has exactly one
terminal ledger entry and nothing is left reserved.

"PostgreSQL goes away" here means its connections are reset and new ones refused (a stopped or
restarted server). A connection that goes silent instead (a network partition: no reset, replies
lost) is a different case: a statement on it waits for the driver's statement timeout.

A connection can also die during a COMMIT that the server carries out: the gateway cannot tell
whether its ledger write landed. A proxy that resets the connection right after the server received
a COMMIT makes that happen to many writes under load; still every request is billed exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url
from tests.support.commit_cutting_proxy import CommitCuttingProxy
from tests.support.gateway import GatewayProcess, free_port
from tests.support.redis_server import ThrowawayRedis
from tests.support.scale_out import (
    account_id_of,
    burst,
    chat_body,
    ledger_audit,
    postgres_database,
    settled_total,
)
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.postgres


@dataclass
class LoadRun:
    """One sequential client per gateway; every reply is recorded with the phase it happened in."""

    targets: list[tuple[str, str]]
    phase: str = "normal"
    # (phase at the start, status, seconds, headers, phase at the end)
    replies: list[tuple[str, int, float, dict[str, str], str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _client(self, base_url: str, key: str) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            phase, started = self.phase, time.monotonic()
            try:
                reply = session.post(
                    f"{base_url}/chat/completions",
                    json=chat_body(),
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                status, headers = reply.status_code, dict(reply.headers)
            except requests.RequestException as exc:  # kept for the failure message: what the client saw
                status, headers = -1, {"client-error": f"{type(exc).__name__}: {exc}"[:300]}
            self.replies.append((phase, status, time.monotonic() - started, headers, self.phase))
            time.sleep(0.02)

    def __enter__(self) -> LoadRun:
        self._threads = [threading.Thread(target=self._client, args=t, daemon=True) for t in self.targets]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def during(self, phase: str) -> list[tuple[int, float, dict[str, str]]]:
        """Replies to requests sent during `phase`."""
        return [(s, took, h) for p, s, took, h, _ in list(self.replies) if p == phase]

    def touching(self, phase: str) -> list[tuple[int, float, dict[str, str]]]:
        """Replies to requests in flight at any time during `phase` (sent before it, or answered after)."""
        return [(s, took, h) for p, s, took, h, end in list(self.replies) if phase in (p, end)]

    def within(self, phase: str) -> list[tuple[int, float, dict[str, str]]]:
        """Replies to requests sent and answered during `phase` (none overlaps the next change)."""
        return [(s, took, h) for p, s, took, h, end in list(self.replies) if p == end == phase]

    def wait_for(self, phase: str, status: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(s == status for s, _, _ in self.during(phase)):
                return
            time.sleep(0.1)
        raise AssertionError(f"no {status} during {phase} in {timeout_s} s: {self.during(phase)[-10:]}")


def test_redis_then_postgres_stopping_during_load(
    tmp_path: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    with (
        ThrowawayRedis(tmp_path / "redis", free_port()) as redis_server,
        postgres_database(tmp_path) as database_url,
        CuttableProxy(make_url(database_url).port or 5432) as proxy,
    ):
        proxied_url = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
        env = {"POLYROUTE_REDIS_URL": redis_server.url, "POLYROUTE_KEY_RPM": "100000"}
        gateways = [gateway_factory(env=env, database_url=proxied_url) for _ in range(2)]
        created = gateways[0].create_key(name="load", account="load@example.com", credits="50")
        account_id = account_id_of(gateways[0], created["hash"])
        with LoadRun([(g.base_url, created["key"]) for g in gateways]) as load:
            load.wait_for("normal", 200)
            time.sleep(1)

            load.phase = "redis-down"
            redis_server.stop()
            time.sleep(3)
            load.phase = "redis-back"
            redis_server.start()
            time.sleep(2)

            load.phase = "postgres-down"
            proxy.cut()
            load.wait_for("postgres-down", 503)
            time.sleep(3)
            load.phase = "postgres-back"
            proxy.restore()
            load.wait_for("postgres-back", 200)
            time.sleep(1)

        # A request is judged by every phase it overlapped: one sent just before Redis stopped must
        # still succeed; one sent while Redis was back but still in flight when PostgreSQL was cut
        # belongs to the PostgreSQL outage.
        redis_down = load.touching("redis-down")
        assert redis_down and all(s == 200 for s, _, _ in redis_down), [r for r in redis_down if r[0] != 200]
        slowest_redis_down_s = max(took for _, took, _ in redis_down)
        print(f"Redis down: {len(redis_down)} requests, all 200, slowest {slowest_redis_down_s * 1000:.0f} ms")
        assert slowest_redis_down_s < 5  # no request waits on the dead Redis (generous: shared 2-core machine)
        redis_back = load.within("redis-back")
        assert redis_back and all(s == 200 for s, _, _ in redis_back), [r for r in redis_back if r[0] != 200]

        postgres_down = load.touching("postgres-down")
        refused = [(took, headers) for status, took, headers in postgres_down if status == 503]
        assert {status for status, _, _ in postgres_down} <= {200, 503}, postgres_down
        assert len(refused) >= 5
        retry_afters = [{k.lower(): v for k, v in headers.items()}.get("retry-after") for _, headers in refused]
        assert retry_afters == ["1"] * len(refused), retry_afters
        slowest_s = max(took for took, _ in refused)
        print(f"PostgreSQL down: {len(refused)} refused with 503, slowest {slowest_s * 1000:.0f} ms")
        assert slowest_s < 10  # fail fast (generous bound: shared 2-core machine)

        # Settles that were cut off retry until PostgreSQL answers: wait for the ledger to be quiet.
        deadline = time.monotonic() + 60
        while True:
            audit = ledger_audit(gateways[0], account_id)
            if audit["open_holds"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ledger_state = {
            "balance": audit["balance"],
            "open_holds": audit["open_holds"],
            "reserved_without_terminal": sorted(set(audit["reserves"]) - set(audit["terminal"])),
            "terminal_without_reserve": sorted(set(audit["terminal"]) - set(audit["reserves"])),
            "duplicated": {ref: n for ref, (n, _) in audit["terminal"].items() if n != 1},
        }
        assert audit["open_holds"] == 0 and audit["balance"]["reserved_pusd"] == 0, ledger_state
        assert set(audit["terminal"]) == set(audit["reserves"]), ledger_state  # nothing lost
        assert all(count == 1 for count, _ in audit["terminal"].values())  # nothing duplicated
        # Only settles are spent: a reserve that landed just as PostgreSQL was cut (its reply lost, the
        # request refused with 503) is released, and its release entry records the hold it gave back.
        assert settled_total(gateways[0], account_id) == audit["balance"]["spent_pusd"], ledger_state
        served = sum(1 for _, status, _, _, _ in load.replies if status == 200)
        print(f"load run: {len(load.replies)} requests, {served} served, {len(audit['reserves'])} reserved")
        assert served <= len(audit["reserves"])  # nothing served unbilled


def test_redis_killed_during_concurrent_bursts_fails_no_request(
    tmp_path: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """The first decisions after Redis dies (pooled connections broken mid-script, a burst in flight)
    fall back to process memory: every request of the burst is answered 200."""
    with ThrowawayRedis(tmp_path / "redis", free_port()) as redis_server:
        env = {
            "POLYROUTE_REDIS_URL": redis_server.url,
            "POLYROUTE_KEY_RPM": "1000000",
            "POLYROUTE_KEY_TPM": "100000000",
        }
        gateway = gateway_factory(env=env)
        key = gateway.create_key(name="burst", account="burst@example.com")["key"]
        for attempt in range(3):
            if attempt:
                redis_server.start()
                time.sleep(1.5)  # the background probe hands decisions back to Redis
            burst([(gateway.base_url, key)] * 50)  # every pooled Redis connection in use
            killer = threading.Timer(0.05 + 0.05 * attempt, redis_server.stop)  # during the next burst
            killer.start()
            replies, took_s = burst([(gateway.base_url, key)] * 300)
            killer.join()
            failed = [(reply.status, reply.body) for reply in replies if reply.status != 200]
            print(f"Redis killed during a 300-request burst: {300 - len(failed)} answered 200 in {took_s:.2f} s")
            assert not failed, failed[:5]
        log = gateway.log_path.read_text()
        assert log.count("rate-limit store unavailable") == 3  # Redis really died under each burst
        assert log.count("rate-limit store is back") == 2


def test_commits_that_land_unseen_bill_every_request_exactly_once(
    tmp_path: Path, gateway_factory: Callable[..., GatewayProcess]
) -> None:
    """Every 4th COMMIT reaches PostgreSQL and is carried out, but its reply is lost with the connection.
    A lone reserve cut like this is refused (503, Retry-After) and its hold released at once, not when
    its lease lapses (10 minutes here: the sweeper plays no part). A batch cut like this is re-run unit
    by unit: its reserves find their holds and their requests go on. A settle is retried. Afterwards
    every request has exactly one closing entry, and each 200 was charged once."""
    with postgres_database(tmp_path) as database_url, CommitCuttingProxy(make_url(database_url).port or 5432) as proxy:
        proxied_url = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
        env = {"POLYROUTE_KEY_RPM": "100000", "POLYROUTE_RESERVATION_LEASE_S": "600"}
        gateways = [gateway_factory(env=env, database_url=proxied_url) for _ in range(2)]
        created = gateways[0].create_key(name="load", account="load@example.com", credits="50")
        account_id = account_id_of(gateways[0], created["hash"])
        # Three concurrent clients per gateway: group-commit batches of several units get cut too.
        with LoadRun([(g.base_url, created["key"]) for g in gateways for _ in range(3)]) as load:
            load.wait_for("normal", 200)
            time.sleep(1)
            load.phase = "commits-cut"
            proxy.cut_every(4)
            time.sleep(8)
            proxy.cut_every(0)
            load.phase = "after"
            load.wait_for("after", 200)
            time.sleep(1)
        cut = proxy.commits_cut

        replies = [(status, {k.lower(): v for k, v in headers.items()}) for _, status, _, headers, _ in load.replies]
        assert {status for status, _ in replies} <= {200, 503}, [r for r in replies if r[0] not in (200, 503)][:5]
        refused = [headers for status, headers in replies if status == 503]
        assert all(headers.get("retry-after") == "1" for headers in refused), refused[:5]
        deadline = time.monotonic() + 30  # background releases and settle retries, well before any lease lapses
        while True:
            audit = ledger_audit(gateways[0], account_id)
            if audit["open_holds"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        kinds: dict[str, list[str]] = {}
        for row in gateways[0].sql("SELECT ref, kind FROM ledger_entries WHERE account_id = :a", a=account_id):
            kinds.setdefault(row["ref"], []).append(row["kind"])
        ledger_state = {
            "balance": audit["balance"],
            "open_holds": audit["open_holds"],
            "reserved_without_terminal": sorted(set(audit["reserves"]) - set(audit["terminal"]))[:10],
            "duplicated": {ref: n for ref, (n, _) in audit["terminal"].items() if n != 1},
            "voided": sorted(ref for ref, found in kinds.items() if "void" in found)[:10],
        }
        assert audit["open_holds"] == 0 and audit["balance"]["reserved_pusd"] == 0, ledger_state
        assert set(audit["terminal"]) == set(audit["reserves"]), ledger_state
        assert all(count == 1 for count, _ in audit["terminal"].values()), ledger_state
        assert not ledger_state["voided"], ledger_state
        assert sum(total for _, total in audit["terminal"].values() if total) >= audit["balance"]["spent_pusd"]
        assert settled_total(gateways[0], account_id) == audit["balance"]["spent_pusd"]
        served = [headers["x-generation-id"] for status, headers in replies if status == 200]
        assert all(sorted(kinds.get(ref, [])) == ["reserve", "settle"] for ref in served), [
            (ref, kinds.get(ref)) for ref in served if sorted(kinds.get(ref, [])) != ["reserve", "settle"]
        ][:5]
        refused_refs = [headers["x-generation-id"] for headers in refused]
        assert all(sorted(kinds.get(ref, [])) in ([], ["release", "reserve"]) for ref in refused_refs)
        released_late = sum(1 for ref in refused_refs if ref in kinds)
        log = "".join(g.log_path.read_text() for g in gateways)
        print(
            f"COMMITs cut after landing: {cut} of {proxy.commits_seen}; {len(replies)} requests, {len(served)} "
            f"served (each settled once), {len(refused)} refused with 503, {released_late} of them had reserved "
            f"(released in the background: {log.count('whose reserve had landed')} log lines); batches re-run "
            f"unit by unit: {log.count('retrying one by one')}; settles retried: {log.count('retrying in')}"
        )
        assert cut >= 10

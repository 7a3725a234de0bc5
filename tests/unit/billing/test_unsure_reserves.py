"""The releaser of unsure reserves: one task, retries with backoff until the writer succeeds, bounded,
one last attempt at shutdown. The writer here is a stand-in that fails a given number of times (the
SQL itself runs against real databases in tests/integration/test_ledger_ambiguous_commits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from polyroute.billing import unsure_reserves
from polyroute.billing.unsure_reserves import UnsureReserves


class FlakyWriter:
    """Fails its first `failures` runs as a lost connection; then succeeds, releasing nothing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0

    async def run(self, work: Any) -> list[Any]:
        self.runs += 1
        if self.runs <= self.failures:
            raise DBAPIError("COMMIT", None, ConnectionResetError("gone"), connection_invalidated=True)
        return []


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unsure_reserves, "_RETRY_S", (0.001, 0.002, 0.005))


async def wait_empty(unsure: UnsureReserves) -> None:
    for _ in range(200):
        if not unsure.pending:
            return
        await asyncio.sleep(0.005)


async def test_unsure_reserves_share_one_task_and_are_retried_until_the_writer_succeeds() -> None:
    writer = FlakyWriter(failures=4)
    unsure = UnsureReserves(writer)  # type: ignore[arg-type]
    for i in range(3):
        unsure.add(f"gen-{i}", 1)
    await wait_empty(unsure)
    assert not unsure.pending and writer.runs == 5  # 4 failures, then one transaction for all three


async def test_unsure_reserves_are_bounded() -> None:
    writer = FlakyWriter(failures=10**6)
    unsure = UnsureReserves(writer, max_pending=2)  # type: ignore[arg-type]
    for i in range(5):
        unsure.add(f"gen-{i}", 1)
    assert list(unsure.pending) == ["gen-0", "gen-1"]  # the rest are left to the lease sweeper
    await unsure.drain()


async def test_shutdown_makes_one_last_attempt_and_gives_up_when_it_fails(caplog: pytest.LogCaptureFixture) -> None:
    writer = FlakyWriter(failures=10**6)
    unsure = UnsureReserves(writer)  # type: ignore[arg-type]
    unsure.add("gen-1", 1)
    await asyncio.sleep(0.02)
    runs = writer.runs
    await unsure.drain()
    assert writer.runs == runs + 1 and list(unsure.pending) == ["gen-1"]
    assert "1 unsure reserve(s) not released at shutdown" in caplog.text


async def test_shutdown_releases_what_is_queued_when_the_database_answers() -> None:
    writer = FlakyWriter(failures=0)
    unsure = UnsureReserves(writer)  # type: ignore[arg-type]
    unsure.add("gen-1", 1)
    await unsure.drain()  # before the background task's first backoff has passed
    assert not unsure.pending and writer.runs == 1

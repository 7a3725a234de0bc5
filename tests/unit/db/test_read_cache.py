"""ReadThroughCache: one read per entry and expiry, stale copies only while a read runs, instant forget."""

from __future__ import annotations

import asyncio

import pytest

from polyroute.db.read_cache import ReadThroughCache


class _Store:
    def __init__(self) -> None:
        self.value = "v1"
        self.reads = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def read(self, key: str) -> str:
        self.reads += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        return f"{key}:{self.value}"


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _cache(store: _Store, clock: _Clock, **kwargs: bool) -> ReadThroughCache[str, str]:
    return ReadThroughCache(store.read, 1.0, clock=clock, **kwargs)


async def test_concurrent_misses_read_once() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    store.release.clear()
    waiting = [asyncio.create_task(cache.get("k")) for _ in range(50)]
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.gather(*waiting) == ["k:v1"] * 50
    assert store.reads == 1
    assert await cache.get("k") == "k:v1" and store.reads == 1  # fresh: no read


async def test_after_expiry_one_request_reads_while_the_others_use_the_stale_copy() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    await cache.get("k")
    store.value, clock.now_s = "v2", 101.5  # expired half a TTL ago
    store.release.clear()
    reader = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0)
    assert [await cache.get("k") for _ in range(20)] == ["k:v1"] * 20  # stale while one read runs
    store.release.set()
    assert await reader == "k:v2"
    assert await cache.get("k") == "k:v2"
    assert store.reads == 2


async def test_an_entry_near_expiry_is_refreshed_in_the_background_without_waiting() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    await cache.get("k")  # fresh until 101.0
    store.value, clock.now_s = "v2", 100.5
    assert await cache.get("k") == "k:v1" and store.reads == 1  # half the TTL left: no read
    clock.now_s = 100.8  # in the last quarter of the TTL
    store.release.clear()
    assert [await cache.get("k") for _ in range(10)] == ["k:v1"] * 10  # answered at once, fresh copy
    await asyncio.sleep(0)
    assert store.reads == 2  # one background read, not one per request
    store.release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.now_s = 101.5  # the old copy has expired; the refreshed one (read at 100.8) has not
    assert await cache.get("k") == "k:v2" and store.reads == 2


async def test_a_copy_expired_more_than_a_ttl_ago_is_never_served() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    await cache.get("k")
    store.value, clock.now_s = "v2", 102.5
    store.release.clear()
    first = asyncio.create_task(cache.get("k"))
    second = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0)
    assert not second.done()  # waits for the read rather than using a copy that old
    store.release.set()
    assert (await first, await second) == ("k:v2", "k:v2")
    assert store.reads == 2


async def test_forget_evicts_at_once_and_disowns_the_read_in_flight() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    await cache.get("k")
    clock.now_s = 101.5
    store.release.clear()
    old_read = asyncio.create_task(cache.get("k"))  # reads v1 ...
    await asyncio.sleep(0)
    store.value = "revoked"
    cache.forget("k")  # ... while the key changes
    late = asyncio.create_task(cache.get("k"))  # no stale copy now: a new read
    await asyncio.sleep(0)
    store.release.set()
    await old_read
    assert await late == "k:revoked"
    assert await cache.get("k") == "k:revoked"  # the disowned read's answer was not kept
    assert store.reads == 3


async def test_failures_propagate_or_fall_back_to_the_last_copy() -> None:
    store, clock = _Store(), _Clock()
    strict, lenient = _cache(store, clock), _cache(store, clock, stale_on_error=True)
    await strict.get("k")
    await lenient.get("k")
    store.fail, clock.now_s = True, 500.0
    with pytest.raises(RuntimeError):
        await strict.get("k")
    assert await lenient.get("k") == "k:v1"
    with pytest.raises(RuntimeError):
        await lenient.get("other")  # nothing to fall back on


async def test_a_caller_that_leaves_does_not_cancel_the_read() -> None:
    store, clock = _Store(), _Clock()
    cache = _cache(store, clock)
    store.release.clear()
    leaver = asyncio.create_task(cache.get("k"))
    stayer = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0)
    leaver.cancel()
    await asyncio.sleep(0)
    store.release.set()
    assert await stayer == "k:v1"
    assert store.reads == 1

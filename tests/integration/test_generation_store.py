"""GenerationStore against real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.usage_log.store import GenerationStore


@pytest.fixture
def store(migrated_engine: AsyncEngine) -> GenerationStore:
    return GenerationStore(migrated_engine)


def generation(gen_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": gen_id,
        "account_id": 1,
        "key_hash": "a" * 64,
        "model": "openai/gpt-4o-mini",
        "provider": "openai",
        "status": "ok",
        "prompt_tokens": 12,
        "completion_tokens": 34,
    }
    return {**row, **overrides}


async def test_inserted_rows_read_back_with_defaults_filled(store: GenerationStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    await store.insert_many([generation("gen-1"), generation("gen-2", streamed=True)])
    row = await store.get("gen-1")
    assert row is not None
    assert (row["model"], row["provider"], row["status"]) == ("openai/gpt-4o-mini", "openai", "ok")
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (12, 34, 0)
    assert (row["reasoning_tokens"], row["cost_pusd"], row["streamed"]) == (0, 0, False)
    assert row["latency_ms"] is None and row["upstream_model"] is None
    assert row["created_at"].utcoffset() == timedelta(0) and row["created_at"] >= before
    second = await store.get("gen-2")
    assert second is not None and second["streamed"] is True


async def test_cost_beyond_32_bits_round_trips_as_an_exact_integer(store: GenerationStore) -> None:
    cost_pusd = 123_456_789_012_345  # about $123.46
    await store.insert_many([generation("gen-big", cost_pusd=cost_pusd)])
    row = await store.get("gen-big")
    assert row is not None and row["cost_pusd"] == cost_pusd and isinstance(row["cost_pusd"], int)


async def test_rows_with_different_optional_fields_go_in_one_batch(store: GenerationStore) -> None:
    created_at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    rows = [
        generation("gen-a"),
        generation("gen-b", latency_ms=850, ttft_ms=120, finish_reason="stop", created_at=created_at),
        generation("gen-c", status="error", error_code=502, http_referer="https://app.example"),
    ]
    await store.insert_many(rows)
    b, c = await store.get("gen-b"), await store.get("gen-c")
    assert b is not None and (b["latency_ms"], b["ttft_ms"], b["finish_reason"]) == (850, 120, "stop")
    assert b["created_at"] == created_at
    assert c is not None and (c["status"], c["error_code"], c["latency_ms"]) == ("error", 502, None)
    assert c["http_referer"] == "https://app.example"


async def test_unknown_column_is_refused_before_anything_is_written(store: GenerationStore) -> None:
    with pytest.raises(ValueError, match="unknown generation column"):
        await store.insert_many([generation("gen-x"), generation("gen-y", cost_usd=0.5)])
    assert await store.get("gen-x") is None


async def test_a_failing_batch_writes_nothing(store: GenerationStore) -> None:
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await store.insert_many([generation("gen-dup"), generation("gen-ok"), generation("gen-dup")])
    assert await store.get("gen-ok") is None


async def test_empty_batch_is_a_no_op_and_unknown_id_reads_none(store: GenerationStore) -> None:
    await store.insert_many([])
    assert await store.get("gen-missing") is None

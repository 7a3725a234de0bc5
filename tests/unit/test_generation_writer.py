"""The batched generation writer keeps rows while the database is away and drops only bad rows."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from polyroute.usage_log.writer import GenerationWriter


class FlakySink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.down = False

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        if self.down:
            raise OperationalError("insert", {}, Exception("connection refused"))
        if any(row["id"] == "dup" for row in rows):
            raise IntegrityError("insert", {}, Exception("duplicate key"))
        self.rows.extend(rows)


async def test_rows_survive_a_database_outage_and_are_written_when_it_returns():
    sink = FlakySink()
    writer = GenerationWriter(sink)
    sink.down = True
    writer.add({"id": "a"})
    with contextlib.suppress(OperationalError):
        await writer.flush()
    assert sink.rows == []
    sink.down = False
    await writer.flush()
    assert [row["id"] for row in sink.rows] == ["a"]


async def test_one_unwritable_row_does_not_block_the_others():
    sink = FlakySink()
    writer = GenerationWriter(sink)
    for row_id in ("a", "dup", "b"):
        writer.add({"id": row_id})
    await writer.flush()
    assert [row["id"] for row in sink.rows] == ["a", "b"]

"""UtcDateTime's fused SQLite processors: the bind one writes exactly the text SQLAlchemy's own path
writes, the result one reads back exactly what SQLAlchemy's own path reads.

Stored datetimes are compared as text (`expires_at < :before`), so one format must be used everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import TypeDecorator
from sqlalchemy.dialects import sqlite

from polyroute.db.tables import UtcDateTime

DIALECT = sqlite.dialect()
FAST = UtcDateTime()._cached_bind_processor(DIALECT)  # what Core and db/prepared.py use
# SQLAlchemy's own composition: process_bind_param, then the SQLite DATETIME type's text format.
REFERENCE = TypeDecorator.bind_processor(UtcDateTime().dialect_impl(DIALECT), DIALECT)
READ = UtcDateTime()._cached_result_processor(DIALECT, None)
READ_REFERENCE = TypeDecorator.result_processor(UtcDateTime().dialect_impl(DIALECT), DIALECT, None)


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_fused_processor_writes_what_sqlalchemy_writes(moment: datetime, offset_min: int) -> None:
    assert FAST is not None and REFERENCE is not None
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    assert FAST(aware) == REFERENCE(aware)
    assert FAST(aware.astimezone(UTC)) == REFERENCE(aware)


def test_none_passes_and_naive_datetimes_are_refused() -> None:
    assert FAST is not None
    assert FAST(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        FAST(datetime(2026, 12, 3, 12, 0))
    assert FAST(datetime(2026, 12, 3, 12, 0, tzinfo=UTC)) == "2026-12-03 12:00:00.000000"


@given(st.lists(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), min_size=1, max_size=6))
def test_the_remembered_text_belongs_to_the_value_bound(moments: list[datetime]) -> None:
    """The processor keeps its last value's text: binding the same object again, or any other value
    in between, always gives that value's own text."""
    assert FAST is not None and REFERENCE is not None
    values = [m.replace(tzinfo=UTC) for m in moments]
    for value in [*values, *values, values[0], values[0]]:
        assert FAST(value) == REFERENCE(value)


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_fused_reader_reads_what_sqlalchemy_reads(moment: datetime, offset_min: int) -> None:
    assert FAST is not None and READ is not None and READ_REFERENCE is not None
    written = FAST(moment.replace(tzinfo=timezone(timedelta(minutes=offset_min))))
    got = READ(written)
    assert got == READ_REFERENCE(written)
    assert got.tzinfo is UTC and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-07 23:59:59",  # CURRENT_TIMESTAMP (a server default): no microseconds
        "2026-12-07 23:59:59.5",
        "2026-12-07T23:59:59.123456",  # 26 characters, ISO's T
        "2026-12-07T23:59:59+02:00",
        "2026-12-07 23:59:59.1+02:00",
        "2026-12-07 23:59:59.1+0200",  # 26 characters with an offset: the composed path's answer
        "2026-12-07",
    ],
)
def test_other_texts_read_as_sqlalchemy_reads_them(text: str) -> None:
    assert READ is not None and READ_REFERENCE is not None
    assert READ(text) == READ_REFERENCE(text)
    assert READ(text).tzinfo is UTC


def test_null_reads_as_none() -> None:
    assert READ is not None
    assert READ(None) is None

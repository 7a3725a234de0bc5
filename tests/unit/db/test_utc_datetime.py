"""UtcDateTime's fused SQLite bind processor writes exactly the text SQLAlchemy's own path writes.

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

"""The sqlite3 adapters for None and bools store exactly what sqlite3 stores without them."""

from __future__ import annotations

import sqlite3

from polyroute.db.engine import register_sqlite_adapters

VALUES = (None, True, False, 0, 1, -7, 2**62, 1.5, "text", "", bytearray(b"\x00\x01"))
QUERY = "SELECT v, typeof(v) FROM t ORDER BY rowid"


def _stored(connection: sqlite3.Connection) -> list[tuple[object, str]]:
    connection.execute("CREATE TABLE t (v)")
    connection.executemany("INSERT INTO t VALUES (?)", [(value,) for value in VALUES])
    connection.execute("INSERT INTO t VALUES (:v)", {"v": None})  # named parameters take the same path
    return connection.execute(QUERY).fetchall()


def test_none_and_bools_are_stored_as_without_the_adapters() -> None:
    saved = dict(sqlite3.adapters)
    try:
        for key in [k for k in sqlite3.adapters if k[0] in (type(None), bool)]:
            del sqlite3.adapters[key]
        without = _stored(sqlite3.connect(":memory:"))
        register_sqlite_adapters()
        register_sqlite_adapters()  # idempotent
        assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
        assert (bool, sqlite3.PrepareProtocol) in sqlite3.adapters
        with_ = _stored(sqlite3.connect(":memory:"))
    finally:
        sqlite3.adapters.clear()
        sqlite3.adapters.update(saved)
    assert with_ == without
    assert with_[0] == (None, "null") and with_[1] == (1, "integer") and with_[2] == (0, "integer")
    assert with_[-1] == (None, "null")

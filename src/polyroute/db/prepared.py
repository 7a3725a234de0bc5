"""Hot statements compiled once and run straight on the DBAPI cursor, with SQLAlchemy's own bind processing.

SQLAlchemy Core spends most of a small statement's time outside the database: the compiled-cache
lookup, building the parameter dict, the execution context, the result object. On SQLite, where the
statement itself takes a few µs, that was about 40 % of a ledger transaction (ADR 0004). `Prepared`
keeps what makes Core safe and drops the rest:

- the SQL text and its parameter order come from SQLAlchemy's compiler for the connection's dialect
  (one compile per statement and dialect, at first use);
- every parameter goes through the bind processor SQLAlchemy itself would apply (for `UtcDateTime`:
  naive datetimes refused, stored as UTC text on SQLite), so a value compared by a later statement
  (`expires_at < :before`) is written exactly as the Core path writes it;
- returned rows go through the columns' result processors (text back to aware UTC datetimes).

It runs inside the caller's transaction on the same DBAPI connection (`Connection.connection`), so it
mixes freely with Core statements. Only positional paramstyles (SQLite's `?`, asyncpg's `$n`) and
statements without expanding parameters are accepted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Date
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


class Prepared:
    __slots__ = ("_binds", "_defaulted", "_get", "_process_at", "_results", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=None if column_keys is None else list(column_keys))
        assert isinstance(compiled, SQLCompiler)
        if not compiled.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: only positional paramstyles are supported")
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("expanding parameters are not supported")
        self.sql: str = compiled.string
        processors: dict[str, Any] = dict(compiled._bind_processors)
        for name, process in processors.items():
            bind = compiled.binds.get(name)
            if bind is not None and isinstance(bind.type, Date):
                # Period starts (today, this week, this month): a handful of values a day, each
                # formatted once (SQLite's DATE processor builds a dict per value; issue #9).
                processors[name] = functools.lru_cache(maxsize=64)(process)
        # Columns left out of an INSERT whose default is computed in Python (Core fills them per row).
        defaults = {column.key: _default_of(column) for column in compiled.insert_prefetch}
        # Values bound in the statement itself (`column == "literal"`): used unless the caller gives one.
        for name, bind in compiled.binds.items():
            if name not in defaults and not bind.required and bind.callable is None:
                defaults[name] = _constant(bind.value)
        names = tuple(compiled.positiontup)
        self._binds = tuple((name, processors.get(name), defaults.get(name)) for name in names)
        # The common case, every value given: one itemgetter, then the few processors by position.
        self._get = itemgetter(*names) if len(names) > 1 else (lambda values: (values[names[0]],) if names else ())
        self._process_at = tuple((i, process) for i, (_, process, _) in enumerate(self._binds) if process)
        self._defaulted = frozenset(name for name, _, default in self._binds if default is not None)
        self._results: tuple[Processor, ...] = tuple(
            column.type._cached_result_processor(dialect, None) for column in compiled._result_columns or ()
        )

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if not self._defaulted or self._defaulted.issubset(values):
            got = self._get(values)
            if not self._process_at:
                return tuple(got)
            params = list(got)
            for i, process in self._process_at:
                params[i] = process(params[i])
            return tuple(params)
        params = []
        for name, process, default in self._binds:
            value = values[name] if default is None or name in values else default()
            params.append(value if process is None else process(value))
        return tuple(params)

    def processed(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Returned rows, each value through its column's result processor."""
        results = self._results
        if not any(results):
            return [tuple(row) for row in rows]
        return [
            tuple(value if process is None else process(value) for process, value in zip(results, row, strict=True))
            for row in rows
        ]


def _default_of(column: Any) -> Callable[[], Any]:
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        raise ValueError(f"column {column.key}: only Python-side defaults can be filled in")
    if default.is_callable:
        return lambda: default.arg(None)
    return _constant(default.arg)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


class RawCursor:
    """A DBAPI cursor of a SQLAlchemy `Connection` (pysqlite's, or SQLAlchemy's aiosqlite/asyncpg adapter),
    in that connection's current transaction. DBAPI errors are raised as SQLAlchemy's (`DBAPIError`
    subclasses, with `connection_invalidated` set for a lost connection), as Core would raise them."""

    __slots__ = ("_conn", "_cursor", "rowcount")

    def __init__(self, conn: Connection) -> None:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        self._conn = conn
        self._cursor = dbapi.cursor()
        self.rowcount = -1

    def execute(self, prepared: Prepared, values: Mapping[str, Any]) -> int:
        """Run one statement; its rowcount (rows changed by a write)."""
        params = prepared.params(values)
        try:
            self._cursor.execute(prepared.sql, params)
        except Exception as error:
            raise self._wrap(error, prepared.sql, params) from error
        self.rowcount = self._cursor.rowcount
        return int(self.rowcount)

    def executemany(self, prepared: Prepared, rows: Iterable[Mapping[str, Any]]) -> None:
        params = [prepared.params(row) for row in rows]
        try:
            self._cursor.executemany(prepared.sql, params)
        except Exception as error:
            raise self._wrap(error, prepared.sql, params) from error

    def fetchall(self, prepared: Prepared) -> list[tuple[Any, ...]]:
        """The rows of `prepared`, just executed, through its columns' result processors."""
        try:
            rows = self._cursor.fetchall()
        except Exception as error:
            raise self._wrap(error, prepared.sql, ()) from error
        return prepared.processed(rows)

    def _wrap(self, error: Exception, sql: str, params: Any) -> Exception:
        dialect = self._conn.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        if not isinstance(error, dbapi_error):
            return error
        dbapi_conn = self._conn.connection.dbapi_connection
        invalidated = bool(dialect.is_disconnect(error, dbapi_conn, self._cursor))
        if invalidated:
            self._conn.invalidate(error)
        return DBAPIError.instance(sql, params, error, dbapi_error, connection_invalidated=invalidated, dialect=dialect)


class PreparedSet:
    """Statements prepared lazily per dialect (the first connection of each dialect compiles them)."""

    def __init__(self, build: Callable[[Dialect], Prepared]) -> None:
        self._build = build
        self._by_dialect: dict[tuple[str, str], Prepared] = {}

    def for_dialect(self, dialect: Dialect) -> Prepared:
        key = (dialect.name, dialect.driver)
        found = self._by_dialect.get(key)
        if found is None:
            found = self._by_dialect[key] = self._build(dialect)
        return found

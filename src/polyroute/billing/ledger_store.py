"""The ledger in SQL: reserve, settle, release, void, grant, renew and reads, on an open connection.

Every write keeps the running totals (`account_balances`, `key_spend`) equal to the append-only
`ledger_entries` by writing both in the same transaction, and decides with conditional statements,
never read-then-write, so concurrent workers and hosts cannot overspend on SQLite or PostgreSQL:

- reserve: `UPDATE account_balances SET reserved = reserved + x WHERE credits - spent - reserved >= x`,
  then, for a key with a limit, its spend row (upserted) with the limit in the `WHERE`. A refusal
  changes nothing (a key refusal undoes its account hold inside the same transaction).
- settle / release / void: `DELETE FROM reservations WHERE ref IN (...) RETURNING ...` decides who
  closes a reservation, so each one is closed exactly once whoever races (request, sweeper, retry).

Both are idempotent per reference (the generation id), so a write whose COMMIT outcome was lost (the
connection died or timed out during it) can simply be run again: the account hold also requires that
no reservation `ref` is open, and a re-run that finds it open reports it held and writes nothing; a
close re-run finds no reservation and moves no money. A reserve re-run after its reservation was
closed fails on the unique `(ref, 'reserve')` entry: nothing is held twice (see docs/billing.md).

The `*_many` forms take a whole group-commit batch (db/write_batcher.py): the conditional holds run
one statement per request, everything else (inserts, total updates aggregated per account and key)
one statement per batch. Statements are built once and reused with bound parameters; on SQLite the
hot ones (reserve, close) are compiled once and run on the DBAPI cursor with SQLAlchemy's own bind
and result processing (`db/prepared.py`, ADR 0004), the rest through Core.

Writes are plain functions of a sync `Connection` (`*_sync`), so the writer runs a whole batch in one
call (one thread hand-off on SQLite); the async forms run the same code through `run_sync`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, Date, Update, bindparam, case, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from polyroute.billing import ledger_pg
from polyroute.billing.ledger_types import Balance, ClosedReservation, KeyBudget, KeySpend, ReserveOutcome
from polyroute.billing.periods import period_starts
from polyroute.db.prepared import Prepared, PreparedSet, RawCursor
from polyroute.db.tables import UtcDateTime, account_balances, key_spend, ledger_entries, reservations, utc_now

__all__ = ["Balance", "ClosedReservation", "KeyBudget", "KeySpend", "ReserveOutcome"]

CLOSING_KINDS = ("settle", "release", "void")
_RESERVED = ReserveOutcome(True, 0, None)  # availability is only worked out for refusals
_PERIODS = {"daily": ("day_start", "day_spent_pusd", "b_day")}
_PERIODS |= {
    "weekly": ("week_start", "week_spent_pusd", "b_week"),
    "monthly": ("month_start", "month_spent_pusd", "b_month"),
}


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    ref: str
    key: KeyBudget
    amount_pusd: int  # > 0
    model: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CloseRequest:
    ref: str
    kind: str  # settle | release | void
    charge_pusd: int = 0  # settle only; may exceed the hold
    expired_before: datetime | None = None  # void only what expired before this


# --- statements (built once) ----------------------------------------------------------------------
_available = account_balances.c.credits_pusd - account_balances.c.spent_pusd - account_balances.c.reserved_pusd
_IS_OPEN = exists().where(reservations.c.ref == bindparam("b_ref"))
_HOLD_ON_ACCOUNT = (
    update(account_balances)
    .where(
        account_balances.c.account_id == bindparam("b_account"),
        _available >= bindparam("b_amount"),
        ~_IS_OPEN,  # a re-run of a reserve that landed holds nothing more (reserve_many_sync)
    )
    .values(
        reserved_pusd=account_balances.c.reserved_pusd + bindparam("b_amount"),
        updated_at=bindparam("b_now", type_=UtcDateTime()),
    )
)
_UNDO_ACCOUNT_HOLD = (
    update(account_balances)
    .where(account_balances.c.account_id == bindparam("b_account"))
    .values(reserved_pusd=account_balances.c.reserved_pusd - bindparam("b_amount"))
)
_CLOSE_ON_ACCOUNT = (
    update(account_balances)
    .where(account_balances.c.account_id == bindparam("b_account"))
    .values(
        reserved_pusd=account_balances.c.reserved_pusd - bindparam("b_held"),
        spent_pusd=account_balances.c.spent_pusd + bindparam("b_charge"),
        updated_at=bindparam("b_now", type_=UtcDateTime()),
    )
)
_DELETE_RESERVATIONS = (
    delete(reservations).where(reservations.c.ref.in_(bindparam("b_refs", expanding=True))).returning(*reservations.c)
)
_DELETE_EXPIRED = (
    delete(reservations)
    .where(reservations.c.ref == bindparam("b_ref"), reservations.c.expires_at < bindparam("b_before"))
    .returning(*reservations.c)
)
_INSERT_RESERVATIONS = insert(reservations)
_INSERT_ENTRIES = insert(ledger_entries)


def _period_usage(reset: str | None) -> ColumnElement[int]:
    """The key's spend toward a limit with this reset; period starts are bound as b_day/b_week/b_month."""
    if reset is None:
        return key_spend.c.spent_pusd
    start, spent, param = _PERIODS[reset]
    return case((key_spend.c[start] == bindparam(param, type_=Date()), key_spend.c[spent]), else_=0)


@lru_cache(maxsize=8)
def _period_params(today: date) -> dict[str, date]:  # shared: callers must not change it
    starts = period_starts(today)
    return {param: starts[reset] for reset, (_, _, param) in _PERIODS.items()}


@cache
def _key_hold(dialect: str, limited: bool, reset: str | None) -> Any:
    """Upsert the key's spend row, adding to its hold; with a limit, only if the limit allows it."""
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(key_spend).values(
        key_hash=bindparam("b_key"), account_id=bindparam("b_account"), reserved_pusd=bindparam("b_amount")
    )
    where = None
    if limited:
        where = _period_usage(reset) + key_spend.c.reserved_pusd + bindparam("b_amount") <= bindparam("b_limit")
    return statement.on_conflict_do_update(
        index_elements=[key_spend.c.key_hash],
        set_={"reserved_pusd": key_spend.c.reserved_pusd + statement.excluded.reserved_pusd},
        where=where,
    )


@cache
def _close_on_key() -> Update:
    values: dict[str, Any] = {
        "reserved_pusd": key_spend.c.reserved_pusd - bindparam("b_held"),
        "spent_pusd": key_spend.c.spent_pusd + bindparam("b_charge"),
    }
    for start, spent, param in _PERIODS.values():
        this_period = key_spend.c[start] == bindparam(param, type_=Date())
        values[spent] = case((this_period, key_spend.c[spent] + bindparam("b_charge")), else_=bindparam("b_charge"))
        values[start] = bindparam(param, type_=Date())
    return update(key_spend).where(key_spend.c.key_hash == bindparam("b_key")).values(**values)


def _entry(
    ref: str, kind: str, account_id: int, key_hash: str | None, amount: int, note: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "ref": ref,
        "kind": kind,
        "account_id": account_id,
        "key_hash": key_hash,
        "amount_pusd": amount,
        "note": note,
        "created_at": now,
    }


# --- SQLite: the hot statements compiled once, run on the DBAPI cursor (db/prepared.py, ADR 0004) ---
_ENTRY_COLUMNS = ("ref", "kind", "account_id", "key_hash", "amount_pusd", "note", "created_at")
_RESERVATION_COLUMNS = ("ref", "account_id", "key_hash", "amount_pusd", "model", "created_at", "expires_at")
_FAST_HOLD = PreparedSet(lambda d: Prepared(_HOLD_ON_ACCOUNT, d))
_FAST_KEY_HOLD = PreparedSet(lambda d: Prepared(_key_hold(d.name, False, None), d))
_FAST_INSERT_RESERVATIONS = PreparedSet(lambda d: Prepared(_INSERT_RESERVATIONS, d, _RESERVATION_COLUMNS))
_FAST_INSERT_ENTRIES = PreparedSet(lambda d: Prepared(_INSERT_ENTRIES, d, _ENTRY_COLUMNS))
_FAST_CLOSE_ON_ACCOUNT = PreparedSet(lambda d: Prepared(_CLOSE_ON_ACCOUNT, d))
_FAST_CLOSE_ON_KEY = PreparedSet(lambda d: Prepared(_close_on_key(), d))


@lru_cache(maxsize=512)
def _fast_delete(dialect: Dialect, count: int) -> Prepared:
    """`DELETE FROM reservations WHERE ref IN (?, ...) RETURNING` a `ClosedReservation`'s columns for
    `count` refs (not `expires_at`: a datetime parsed per request for nothing)."""
    refs: list[Any] = [bindparam(f"r{i}") for i in range(count)]
    c = reservations.c
    closed = (c.ref, c.account_id, c.key_hash, c.amount_pusd, c.model, c.created_at)
    return Prepared(delete(reservations).where(c.ref.in_(refs)).returning(*closed), dialect)


def _fast(conn: Connection) -> bool:
    """SQLite runs the hot statements on the DBAPI cursor; PostgreSQL has its one-statement forms (ledger_pg)."""
    return conn.dialect.name == "sqlite"


# --- reserve --------------------------------------------------------------------------------------
async def reserve_many(conn: AsyncConnection, requests: list[ReserveRequest], today: date) -> list[ReserveOutcome]:
    return await conn.run_sync(reserve_many_sync, requests, today)


def reserve_many_sync(conn: Connection, requests: list[ReserveRequest], today: date) -> list[ReserveOutcome]:
    now = utc_now()
    outcomes: list[ReserveOutcome] = []
    held: list[ReserveRequest] = []
    unlimited: defaultdict[tuple[str, int], int] = defaultdict(int)
    one_statement = conn.dialect.name == "postgresql"  # one round trip per hold (ledger_pg)
    cursor = RawCursor(conn) if _fast(conn) else None
    for request in requests:
        key = request.key
        if one_statement and key.limit_pusd is None:
            reserved = ledger_pg.reserve_unlimited(
                conn,
                ref=request.ref,
                key_hash=key.key_hash,
                account_id=key.account_id,
                amount_pusd=request.amount_pusd,
                model=request.model,
                expires_at=request.expires_at,
                now=now,
            )
            outcomes.append(_RESERVED if reserved else _refused(conn, key, today))
            continue
        params = {"b_account": key.account_id, "b_amount": request.amount_pusd, "b_now": now, "b_ref": request.ref}
        if cursor is not None:
            placed = cursor.execute(_FAST_HOLD.for_dialect(conn.dialect), params)
        else:
            placed = conn.execute(_HOLD_ON_ACCOUNT, params).rowcount
        if placed != 1:
            outcomes.append(_RESERVED if _is_open(conn, request.ref) else _refused(conn, key, today))
            continue
        if key.limit_pusd is None:
            unlimited[(key.key_hash, key.account_id)] += request.amount_pusd  # one upsert per key, below
        elif not _hold_on_limited_key(conn, request, today):
            conn.execute(_UNDO_ACCOUNT_HOLD, params)
            outcomes.append(_refused(conn, key, today))
            continue
        held.append(request)
        outcomes.append(_RESERVED)
    if unlimited:
        rows = [{"b_key": k, "b_account": a, "b_amount": x} for (k, a), x in unlimited.items()]
        if cursor is not None:
            cursor.executemany(_FAST_KEY_HOLD.for_dialect(conn.dialect), rows)
        else:
            conn.execute(_key_hold(conn.dialect.name, False, None), rows)
    if held:
        reservation_rows = [
            {
                "ref": r.ref,
                "account_id": r.key.account_id,
                "key_hash": r.key.key_hash,
                "amount_pusd": r.amount_pusd,
                "model": r.model,
                "created_at": now,
                "expires_at": r.expires_at,
            }
            for r in held
        ]
        entries = [
            _entry(r.ref, "reserve", r.key.account_id, r.key.key_hash, r.amount_pusd, r.model, now) for r in held
        ]
        if cursor is not None:
            cursor.executemany(_FAST_INSERT_RESERVATIONS.for_dialect(conn.dialect), reservation_rows)
            cursor.executemany(_FAST_INSERT_ENTRIES.for_dialect(conn.dialect), entries)
        else:
            conn.execute(_INSERT_RESERVATIONS, reservation_rows)
            conn.execute(_INSERT_ENTRIES, entries)
    return outcomes


def _hold_on_limited_key(conn: Connection, request: ReserveRequest, today: date) -> bool:
    key = request.key
    assert key.limit_pusd is not None
    if request.amount_pusd > key.limit_pusd:
        return False  # also covers a key without a spend row yet (the insert path has no WHERE)
    params = {
        "b_key": key.key_hash,
        "b_account": key.account_id,
        "b_amount": request.amount_pusd,
        "b_limit": key.limit_pusd,
        **_period_params(today),
    }
    statement = _key_hold(conn.dialect.name, True, key.limit_reset)
    return bool(conn.execute(statement, params).rowcount == 1)


def _is_open(conn: Connection, ref: str) -> bool:
    """Whether reservation `ref` is open: its reserve is being re-run after a COMMIT whose outcome was lost."""
    return bool(conn.execute(select(_IS_OPEN), {"b_ref": ref}).scalar())


def _refused(conn: Connection, key: KeyBudget, today: date) -> ReserveOutcome:
    balance = read_balance_sync(conn, key.account_id)
    account = 0 if balance is None else balance.available_pusd
    if key.limit_pusd is None:
        return ReserveOutcome(False, account, None)
    query = select(_period_usage(key.limit_reset) + key_spend.c.reserved_pusd).where(
        key_spend.c.key_hash == key.key_hash
    )
    used = conn.execute(query, _period_params(today)).scalar_one_or_none() or 0
    return ReserveOutcome(False, account, key.limit_pusd - int(used))


async def reserve(
    conn: AsyncConnection, *, ref: str, key: KeyBudget, amount_pusd: int, model: str, expires_at: datetime, today: date
) -> ReserveOutcome:
    """Hold `amount_pusd` (> 0) for request `ref` if both the account and the key's limit allow it."""
    [outcome] = await reserve_many(conn, [ReserveRequest(ref, key, amount_pusd, model, expires_at)], today)
    return outcome


# --- settle, release, void ------------------------------------------------------------------------
async def close_many(
    conn: AsyncConnection, requests: list[CloseRequest], today: date
) -> list[ClosedReservation | None]:
    return await conn.run_sync(close_many_sync, requests, today)


def close_many_sync(conn: Connection, requests: list[CloseRequest], today: date) -> list[ClosedReservation | None]:
    """Close each reservation once: None for one already closed (or, with `expired_before`, not expired)."""
    for request in requests:
        if request.kind not in CLOSING_KINDS or (request.kind != "settle" and request.charge_pusd):
            raise ValueError(f"cannot {request.kind} with a charge of {request.charge_pusd}")
    if conn.dialect.name == "postgresql" and all(r.expired_before is None for r in requests):
        return _close_many_in_one_statement(conn, requests, today)
    cursor = RawCursor(conn) if _fast(conn) else None
    found: dict[str, Any] = {}
    plain = list(dict.fromkeys(r.ref for r in requests if r.expired_before is None))
    if plain and cursor is not None:
        delete_ = _fast_delete(conn.dialect, len(plain))
        cursor.execute(delete_, {f"r{i}": ref for i, ref in enumerate(plain)})
        found.update((row[0], ClosedReservation(*row)) for row in cursor.fetchall(delete_))
    elif plain:
        found.update((row.ref, _closed(row)) for row in conn.execute(_DELETE_RESERVATIONS, {"b_refs": plain}))
    for request in requests:
        if request.expired_before is not None:
            params = {"b_ref": request.ref, "b_before": request.expired_before}
            found.update((row.ref, _closed(row)) for row in conn.execute(_DELETE_EXPIRED, params))
    now = utc_now()
    results: list[ClosedReservation | None] = []
    accounts: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])
    keys: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    entries = []
    for request in requests:
        closed = found.pop(request.ref, None)  # a ref closed twice in one batch: only the first finds it
        results.append(closed)
        if closed is None:
            continue
        for totals in (accounts[closed.account_id], keys[closed.key_hash]):
            totals[0] += closed.amount_pusd
            totals[1] += request.charge_pusd
        amount = request.charge_pusd if request.kind == "settle" else closed.amount_pusd
        entries.append(_entry(request.ref, request.kind, closed.account_id, closed.key_hash, amount, None, now))
    if entries:
        account_rows = [{"b_account": a, "b_held": h, "b_charge": c, "b_now": now} for a, (h, c) in accounts.items()]
        periods = _period_params(today)
        key_rows = [{"b_key": k, "b_held": h, "b_charge": c, **periods} for k, (h, c) in keys.items()]
        if cursor is not None:
            cursor.executemany(_FAST_CLOSE_ON_ACCOUNT.for_dialect(conn.dialect), account_rows)
            cursor.executemany(_FAST_CLOSE_ON_KEY.for_dialect(conn.dialect), key_rows)
            cursor.executemany(_FAST_INSERT_ENTRIES.for_dialect(conn.dialect), entries)
        else:
            conn.execute(_CLOSE_ON_ACCOUNT, account_rows)
            conn.execute(_close_on_key(), key_rows)
            conn.execute(_INSERT_ENTRIES, entries)
    return results


def _closed(row: Any) -> ClosedReservation:
    return ClosedReservation(row.ref, row.account_id, row.key_hash, row.amount_pusd, row.model, row.created_at)


def _close_many_in_one_statement(
    conn: Connection, requests: list[CloseRequest], today: date
) -> list[ClosedReservation | None]:
    """PostgreSQL: the same closes in one round trip (ledger_pg); a ref closed twice in one batch
    is closed by its first request, with that request's kind and charge."""
    first: dict[str, CloseRequest] = {}
    for request in requests:
        first.setdefault(request.ref, request)
    closing = [(r.ref, r.kind, r.charge_pusd) for r in first.values()]
    found = ledger_pg.close_plain(conn, closing, _period_params(today), utc_now())
    results: list[ClosedReservation | None] = []
    for request in requests:
        row = found.pop(request.ref, None)
        results.append(None if row is None else ClosedReservation(*row))
    return results


def release_if_open_sync(conn: Connection, accounts: dict[str, int], today: date) -> list[ClosedReservation]:
    """Release those of the reservations `accounts` (ref -> account id) that are open; the released ones.

    For reserves whose COMMIT outcome was lost. Their accounts' balance rows are locked first (on
    PostgreSQL; SQLite has one writer at a time anyway): a reserve whose transaction is still
    committing on the server, its connection gone, holds that lock, so it is waited for, not missed.
    """
    lock = (
        select(account_balances.c.account_id)
        .where(account_balances.c.account_id.in_(sorted(set(accounts.values()))))
        .order_by(account_balances.c.account_id)
        .with_for_update()
    )
    conn.execute(lock).all()
    closed = close_many_sync(conn, [CloseRequest(ref, "release") for ref in accounts], today)
    return [found for found in closed if found is not None]


async def close(
    conn: AsyncConnection,
    ref: str,
    *,
    kind: str,
    charge_pusd: int = 0,
    today: date,
    expired_before: datetime | None = None,
) -> ClosedReservation | None:
    """Close reservation `ref`: settle charges `charge_pusd` (may exceed the hold), release and void
    charge nothing. None when it is already closed (or, with `expired_before`, not yet expired)."""
    [closed] = await close_many(conn, [CloseRequest(ref, kind, charge_pusd, expired_before)], today)
    return closed


# --- grants and leases ----------------------------------------------------------------------------
async def grant(conn: AsyncConnection, account_id: int, amount_pusd: int, ref: str, note: str | None) -> Balance:
    """Add credits (amount > 0), once per `ref` (see `grant_sync`)."""
    return await conn.run_sync(grant_sync, account_id, amount_pusd, ref, note)


def grant_sync(conn: Connection, account_id: int, amount_pusd: int, ref: str, note: str | None) -> Balance:
    """Add credits once per `ref`: a grant run again with the same ref (after an error that left its
    outcome unknown) finds its entry and adds nothing."""
    if amount_pusd <= 0:
        raise ValueError("a grant must be a positive amount")
    earlier = conn.execute(
        select(ledger_entries.c.account_id, ledger_entries.c.amount_pusd).where(
            ledger_entries.c.ref == ref, ledger_entries.c.kind == "grant"
        )
    ).first()
    if earlier is not None:
        if (earlier.account_id, earlier.amount_pusd) != (account_id, amount_pusd):
            raise ValueError(f"grant {ref} was already made with another account or amount")
        found = read_balance_sync(conn, account_id)
        assert found is not None
        return found
    now = utc_now()
    conn.execute(_INSERT_ENTRIES, [_entry(ref, "grant", account_id, None, amount_pusd, note, now)])
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    upsert = insert_(account_balances).values(account_id=account_id, credits_pusd=amount_pusd, updated_at=now)
    upsert = upsert.on_conflict_do_update(
        index_elements=[account_balances.c.account_id],
        set_={"credits_pusd": account_balances.c.credits_pusd + amount_pusd, "updated_at": now},
    )
    conn.execute(upsert)
    found = read_balance_sync(conn, account_id)
    assert found is not None
    return found


async def renew(conn: AsyncConnection, refs: list[str], expires_at: datetime) -> int:
    return await conn.run_sync(renew_sync, refs, expires_at)


def renew_sync(conn: Connection, refs: list[str], expires_at: datetime) -> int:
    """Extend the lease of open reservations (those of requests still running in this process)."""
    if not refs:
        return 0
    result = conn.execute(update(reservations).where(reservations.c.ref.in_(refs)).values(expires_at=expires_at))
    return int(result.rowcount)


# --- reads ----------------------------------------------------------------------------------------
async def read_balance(conn: AsyncConnection, account_id: int) -> Balance | None:
    return await conn.run_sync(read_balance_sync, account_id)


def read_balance_sync(conn: Connection, account_id: int) -> Balance | None:
    query = select(account_balances).where(account_balances.c.account_id == account_id)
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    return Balance(account_id, int(row.credits_pusd), int(row.spent_pusd), int(row.reserved_pusd))


async def read_key_spend(conn: AsyncConnection, key_hash: str, today: date) -> KeySpend:
    columns = [_period_usage(reset) for reset in ("daily", "weekly", "monthly")]
    query = select(key_spend.c.reserved_pusd, key_spend.c.spent_pusd, *columns).where(key_spend.c.key_hash == key_hash)
    row = (await conn.execute(query, _period_params(today))).one_or_none()
    return KeySpend() if row is None else KeySpend(*(int(value) for value in row))


async def expired_refs(conn: AsyncConnection, now: datetime, limit: int = 500) -> list[str]:
    query = (
        select(reservations.c.ref)
        .where(reservations.c.expires_at < now)
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    return [str(ref) for ref in (await conn.execute(query)).scalars()]

"""The ledger in SQL: each function is one unit of work on an open connection (see db/write_batcher).

Every unit keeps the running totals (`account_balances`, `key_spend`) equal to the append-only
`ledger_entries` by writing both in the same transaction, and decides with conditional statements,
never read-then-write, so concurrent workers and hosts cannot overspend on SQLite or PostgreSQL:

- reserve: `UPDATE account_balances SET reserved = reserved + x WHERE credits - spent - reserved >= x`,
  then the key's spend row (upserted) with its limit in the `WHERE`; a refusal undoes nothing
  because it changed nothing (or compensates the account update inside the same transaction).
- settle / release / void: `DELETE FROM reservations WHERE ref = ... RETURNING amount` decides who
  closes a reservation, so each one is closed exactly once whoever races (request, sweeper, retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from polyroute.billing.periods import period_starts
from polyroute.db.tables import account_balances, key_spend, ledger_entries, reservations, utc_now

CLOSING_KINDS = ("settle", "release", "void")


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """The paying key: whose account it draws on, and its own limit (None = no limit)."""

    key_hash: str
    account_id: int
    limit_pusd: int | None = None
    limit_reset: str | None = None  # "daily" | "weekly" | "monthly" | None (all time)


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    reserved: bool
    account_available_pusd: int  # what the account could still reserve (after this one, if reserved)
    key_available_pusd: int | None  # the same for the key's limit; None = no limit

    @property
    def limited_by(self) -> str:
        key = self.key_available_pusd
        return "key" if key is not None and key < self.account_available_pusd else "account"

    @property
    def budget_pusd(self) -> int:
        key = self.key_available_pusd
        return self.account_available_pusd if key is None else min(key, self.account_available_pusd)


@dataclass(frozen=True, slots=True)
class ClosedReservation:
    ref: str
    account_id: int
    key_hash: str
    amount_pusd: int  # what was held
    model: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    account_id: int
    credits_pusd: int
    spent_pusd: int
    reserved_pusd: int

    @property
    def balance_pusd(self) -> int:
        return self.credits_pusd - self.spent_pusd

    @property
    def available_pusd(self) -> int:
        return self.credits_pusd - self.spent_pusd - self.reserved_pusd


@dataclass(frozen=True, slots=True)
class KeySpend:
    reserved_pusd: int = 0
    spent_pusd: int = 0
    daily_pusd: int = 0
    weekly_pusd: int = 0
    monthly_pusd: int = 0

    def usage_toward_limit(self, limit_reset: str | None) -> int:
        return {"daily": self.daily_pusd, "weekly": self.weekly_pusd, "monthly": self.monthly_pusd}.get(
            limit_reset or "", self.spent_pusd
        )


_PERIOD_COLUMNS = {"daily": ("day_start", "day_spent_pusd"), "weekly": ("week_start", "week_spent_pusd")}
_PERIOD_COLUMNS["monthly"] = ("month_start", "month_spent_pusd")


def _dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _period_usage(reset: str | None, today: date, table: Any = key_spend) -> ColumnElement[int]:
    """The key's spend counted toward a limit with this reset, as of `today`."""
    if reset is None:
        return table.c.spent_pusd  # type: ignore[no-any-return]
    start_column, spent_column = _PERIOD_COLUMNS[reset]
    start = period_starts(today)[reset]
    return case((table.c[start_column] == start, table.c[spent_column]), else_=literal(0))


async def _entry(
    conn: AsyncConnection, ref: str, kind: str, account_id: int, key_hash: str | None, amount: int, note: str | None
) -> None:
    values = {"ref": ref, "kind": kind, "account_id": account_id, "key_hash": key_hash, "amount_pusd": amount}
    await conn.execute(insert(ledger_entries).values(**values, note=note, created_at=utc_now()))


# --- grants ---------------------------------------------------------------------------------------
async def grant(conn: AsyncConnection, account_id: int, amount_pusd: int, ref: str, note: str | None) -> Balance:
    """Add credits (amount > 0). Idempotent per `ref`: a repeated grant ref raises IntegrityError."""
    if amount_pusd <= 0:
        raise ValueError("a grant must be a positive amount")
    await _entry(conn, ref, "grant", account_id, None, amount_pusd, note)
    upsert = _dialect_insert(conn, account_balances).values(
        account_id=account_id, credits_pusd=amount_pusd, updated_at=utc_now()
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[account_balances.c.account_id],
        set_={"credits_pusd": account_balances.c.credits_pusd + amount_pusd, "updated_at": utc_now()},
    )
    await conn.execute(upsert)
    found = await read_balance(conn, account_id)
    assert found is not None
    return found


# --- reserve --------------------------------------------------------------------------------------
async def reserve(
    conn: AsyncConnection,
    *,
    ref: str,
    key: KeyBudget,
    amount_pusd: int,
    model: str,
    expires_at: datetime,
    today: date,
) -> ReserveOutcome:
    """Hold `amount_pusd` (> 0) for request `ref` if both the account and the key's limit allow it."""
    held = await conn.execute(
        update(account_balances)
        .where(
            account_balances.c.account_id == key.account_id,
            account_balances.c.credits_pusd - account_balances.c.spent_pusd - account_balances.c.reserved_pusd
            >= amount_pusd,
        )
        .values(reserved_pusd=account_balances.c.reserved_pusd + amount_pusd, updated_at=utc_now())
    )
    if held.rowcount != 1:
        return await _refused(conn, key, today)
    if not await _hold_on_key(conn, key, amount_pusd, today):
        await conn.execute(
            update(account_balances)
            .where(account_balances.c.account_id == key.account_id)
            .values(reserved_pusd=account_balances.c.reserved_pusd - amount_pusd)
        )
        return await _refused(conn, key, today)
    row = {"ref": ref, "account_id": key.account_id, "key_hash": key.key_hash, "amount_pusd": amount_pusd}
    await conn.execute(insert(reservations).values(**row, model=model, created_at=utc_now(), expires_at=expires_at))
    await _entry(conn, ref, "reserve", key.account_id, key.key_hash, amount_pusd, model)
    return ReserveOutcome(True, *(await _availability(conn, key, today)))


async def _hold_on_key(conn: AsyncConnection, key: KeyBudget, amount_pusd: int, today: date) -> bool:
    if key.limit_pusd is not None and amount_pusd > key.limit_pusd:
        return False  # also covers a key without a spend row yet
    upsert = _dialect_insert(conn, key_spend).values(
        key_hash=key.key_hash, account_id=key.account_id, reserved_pusd=amount_pusd
    )
    where = None
    if key.limit_pusd is not None:
        where = _period_usage(key.limit_reset, today) + key_spend.c.reserved_pusd + amount_pusd <= key.limit_pusd
    upsert = upsert.on_conflict_do_update(
        index_elements=[key_spend.c.key_hash],
        set_={"reserved_pusd": key_spend.c.reserved_pusd + amount_pusd},
        where=where,
    )
    return bool((await conn.execute(upsert)).rowcount == 1)


async def _availability(conn: AsyncConnection, key: KeyBudget, today: date) -> tuple[int, int | None]:
    balance = await read_balance(conn, key.account_id)
    account = 0 if balance is None else balance.available_pusd
    if key.limit_pusd is None:
        return account, None
    query = select(_period_usage(key.limit_reset, today) + key_spend.c.reserved_pusd).where(
        key_spend.c.key_hash == key.key_hash
    )
    used = (await conn.execute(query)).scalar_one_or_none() or 0
    return account, key.limit_pusd - int(used)


async def _refused(conn: AsyncConnection, key: KeyBudget, today: date) -> ReserveOutcome:
    return ReserveOutcome(False, *(await _availability(conn, key, today)))


# --- settle, release, void ------------------------------------------------------------------------
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
    if kind not in CLOSING_KINDS or (kind != "settle" and charge_pusd):
        raise ValueError(f"cannot {kind} with a charge of {charge_pusd}")
    query = delete(reservations).where(reservations.c.ref == ref)
    if expired_before is not None:
        query = query.where(reservations.c.expires_at < expired_before)
    found = (await conn.execute(query.returning(*reservations.c))).one_or_none()
    if found is None:
        return None
    closed = ClosedReservation(
        found.ref, found.account_id, found.key_hash, found.amount_pusd, found.model, found.created_at
    )
    held = closed.amount_pusd
    await conn.execute(
        update(account_balances)
        .where(account_balances.c.account_id == closed.account_id)
        .values(
            reserved_pusd=account_balances.c.reserved_pusd - held,
            spent_pusd=account_balances.c.spent_pusd + charge_pusd,
            updated_at=utc_now(),
        )
    )
    await conn.execute(
        update(key_spend)
        .where(key_spend.c.key_hash == closed.key_hash)
        .values(**_spend_values(held, charge_pusd, today))
    )
    amount = charge_pusd if kind == "settle" else held
    await _entry(conn, ref, kind, closed.account_id, closed.key_hash, amount, None)
    return closed


def _spend_values(held: int, charge: int, today: date) -> dict[str, Any]:
    values: dict[str, Any] = {
        "reserved_pusd": key_spend.c.reserved_pusd - held,
        "spent_pusd": key_spend.c.spent_pusd + charge,
    }
    for reset, start in period_starts(today).items():
        start_column, spent_column = _PERIOD_COLUMNS[reset]
        values[spent_column] = case(
            (key_spend.c[start_column] == start, key_spend.c[spent_column] + charge), else_=literal(charge)
        )
        values[start_column] = start
    return values


async def renew(conn: AsyncConnection, refs: list[str], expires_at: datetime) -> int:
    """Extend the lease of open reservations (those of requests still running in this process)."""
    if not refs:
        return 0
    result = await conn.execute(update(reservations).where(reservations.c.ref.in_(refs)).values(expires_at=expires_at))
    return int(result.rowcount)


# --- reads ----------------------------------------------------------------------------------------
async def read_balance(conn: AsyncConnection, account_id: int) -> Balance | None:
    row = (
        await conn.execute(select(account_balances).where(account_balances.c.account_id == account_id))
    ).one_or_none()
    if row is None:
        return None
    return Balance(account_id, int(row.credits_pusd), int(row.spent_pusd), int(row.reserved_pusd))


async def read_key_spend(conn: AsyncConnection, key_hash: str, today: date) -> KeySpend:
    columns = [_period_usage(reset, today) for reset in ("daily", "weekly", "monthly")]
    query = select(key_spend.c.reserved_pusd, key_spend.c.spent_pusd, *columns).where(key_spend.c.key_hash == key_hash)
    row = (await conn.execute(query)).one_or_none()
    return KeySpend() if row is None else KeySpend(*(int(value) for value in row))


async def expired_refs(conn: AsyncConnection, now: datetime, limit: int = 500) -> list[str]:
    query = (
        select(reservations.c.ref)
        .where(reservations.c.expires_at < now)
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    return [str(ref) for ref in (await conn.execute(query)).scalars()]


async def open_reserved_total(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.coalesce(func.sum(reservations.c.amount_pusd), 0)))).scalar_one())

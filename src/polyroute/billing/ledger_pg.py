"""PostgreSQL's one-round-trip forms of the two hot ledger writes (ADR 0004).

On PostgreSQL every statement is a network round trip. A reserve for a key without a limit took 4
statements and a settle 4 (plus the record): here each is one statement whose data-modifying CTEs
do the same writes, with the same conditions, in the same transaction as before:

- reserve: the conditional account hold decides; the key's spend upsert, the reservation row and the
  `reserve` entry are inserted from its RETURNING, so they exist exactly when the hold was placed.
  The hold also requires that no reservation `ref` is open yet, and the statement counts an open one
  (read in the statement's snapshot, before its own insert) as held: a reserve re-run after a COMMIT
  whose outcome was lost finds its hold and holds nothing more (one primary-key probe, same round trip).
- close (settle/release without a lease condition): `DELETE … USING unnest(refs)` decides who closes;
  the account and key totals (aggregated per account and per key) and the closing entries come from
  its RETURNING, so a reservation already closed moves no money.

Keys with a limit (the hold may have to be undone when the key refuses) and the sweeper's voids keep
the statement-by-statement forms in `ledger_store`. Parameters are typed (asyncpg casts them).

Lock order. Every ledger write locks the account's balance row before the key's spend row, so two
transactions never wait on each other in a cycle. PostgreSQL runs the data-modifying CTEs that the
main query does not read after it, in an unspecified order (in practice the reverse of the listing),
so the close statement makes the key update wait for the account update explicitly: its
`(SELECT count(*) FROM acct)` condition runs the account update to completion first. Without it,
two workers deadlocked every few hundred requests (PostgreSQL's 1 s deadlock timeout, then a retry).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Date, Integer, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from polyroute.db.prepared import Prepared, PreparedSet, RawCursor
from polyroute.db.tables import UtcDateTime

_RESERVE = text(
    """
WITH acct AS (
    UPDATE account_balances
    SET reserved_pusd = reserved_pusd + :b_amount, updated_at = :b_now
    WHERE account_id = :b_account AND credits_pusd - spent_pusd - reserved_pusd >= :b_amount
      AND NOT EXISTS (SELECT 1 FROM reservations WHERE ref = :b_ref)
    RETURNING account_id
), spend AS (
    INSERT INTO key_spend (key_hash, account_id, reserved_pusd)
    SELECT :b_key, account_id, :b_amount FROM acct
    ON CONFLICT (key_hash) DO UPDATE SET reserved_pusd = key_spend.reserved_pusd + excluded.reserved_pusd
), hold AS (
    INSERT INTO reservations (ref, account_id, key_hash, amount_pusd, model, created_at, expires_at)
    SELECT :b_ref, account_id, :b_key, :b_amount, :b_model, :b_now, :b_expires FROM acct
), entry AS (
    INSERT INTO ledger_entries (ref, kind, account_id, key_hash, amount_pusd, note, created_at)
    SELECT :b_ref, 'reserve', account_id, :b_key, :b_amount, :b_model, :b_now FROM acct
)
SELECT (SELECT count(*) FROM acct) + (SELECT count(*) FROM reservations WHERE ref = :b_ref)
"""
).bindparams(
    bindparam("b_amount", type_=BigInteger()),
    bindparam("b_account", type_=Integer()),
    bindparam("b_key", type_=Text()),
    bindparam("b_ref", type_=Text()),
    bindparam("b_model", type_=Text()),
    bindparam("b_now", type_=UtcDateTime()),
    bindparam("b_expires", type_=UtcDateTime()),
)


def _period(start: str, spent: str, param: str) -> str:
    return f"{spent} = CASE WHEN k.{start} = :{param} THEN k.{spent} + s.charge ELSE s.charge END, {start} = :{param}"


_CLOSE = text(
    f"""
WITH req AS (
    SELECT * FROM unnest(CAST(:b_refs AS TEXT[]), CAST(:b_kinds AS TEXT[]), CAST(:b_charges AS BIGINT[]))
        AS r(ref, kind, charge)
), closed AS (
    DELETE FROM reservations USING req WHERE reservations.ref = req.ref
    RETURNING reservations.ref, reservations.account_id, reservations.key_hash, reservations.amount_pusd,
              reservations.model, reservations.created_at, req.kind, req.charge
), acct AS (
    UPDATE account_balances a
    SET reserved_pusd = a.reserved_pusd - s.held, spent_pusd = a.spent_pusd + s.charge, updated_at = :b_now
    FROM (SELECT account_id, sum(amount_pusd)::bigint AS held, sum(charge)::bigint AS charge
          FROM closed GROUP BY account_id) s
    WHERE a.account_id = s.account_id
    RETURNING a.account_id
), spend AS (
    UPDATE key_spend k
    SET reserved_pusd = k.reserved_pusd - s.held, spent_pusd = k.spent_pusd + s.charge,
        {_period("day_start", "day_spent_pusd", "b_day")},
        {_period("week_start", "week_spent_pusd", "b_week")},
        {_period("month_start", "month_spent_pusd", "b_month")}
    FROM (SELECT key_hash, sum(amount_pusd)::bigint AS held, sum(charge)::bigint AS charge
          FROM closed GROUP BY key_hash) s
    WHERE k.key_hash = s.key_hash AND (SELECT count(*) FROM acct) >= 0
), entry AS (
    INSERT INTO ledger_entries (ref, kind, account_id, key_hash, amount_pusd, note, created_at)
    SELECT ref, kind, account_id, key_hash, CASE WHEN kind = 'settle' THEN charge ELSE amount_pusd END, NULL, :b_now
    FROM closed
)
SELECT ref, account_id, key_hash, amount_pusd, model, created_at FROM closed
"""  # noqa: S608 (the f-string only places fixed column names; every value is a bound parameter)
).bindparams(
    bindparam("b_refs", type_=ARRAY(Text())),
    bindparam("b_kinds", type_=ARRAY(Text())),
    bindparam("b_charges", type_=ARRAY(BigInteger())),
    bindparam("b_now", type_=UtcDateTime()),
    bindparam("b_day", type_=Date()),
    bindparam("b_week", type_=Date()),
    bindparam("b_month", type_=Date()),
)
_CLOSE_TYPED = _CLOSE.columns(
    ref=Text(), account_id=Integer(), key_hash=Text(), amount_pusd=BigInteger(), model=Text(), created_at=UtcDateTime()
)
# Compiled once, run on the connection's DBAPI cursor (SQLAlchemy's asyncpg adapter) with Core's bind
# and result processing: no per-statement Core execution overhead (db/prepared.py).
_FAST_RESERVE = PreparedSet(lambda dialect: Prepared(_RESERVE, dialect))
_FAST_CLOSE = PreparedSet(lambda dialect: Prepared(_CLOSE_TYPED, dialect))


def reserve_unlimited(
    conn: Connection,
    *,
    ref: str,
    key_hash: str,
    account_id: int,
    amount_pusd: int,
    model: str,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Hold `amount_pusd` for a key without a limit, in one statement; False (nothing written) if refused.

    True also when reservation `ref` is already open (this reserve is a re-run of one that landed)."""
    params = {
        "b_amount": amount_pusd,
        "b_account": account_id,
        "b_key": key_hash,
        "b_ref": ref,
        "b_model": model,
        "b_now": now,
        "b_expires": expires_at,
    }
    cursor = RawCursor(conn)
    prepared = _FAST_RESERVE.for_dialect(conn.dialect)
    cursor.execute(prepared, params)
    [(found,)] = cursor.fetchall(prepared)
    return bool(found >= 1)


def close_plain(
    conn: Connection, closing: list[tuple[str, str, int]], periods: dict[str, date], now: datetime
) -> dict[str, Any]:
    """Close (ref, kind, charge) triples with distinct refs in one statement; the closed rows by ref:
    (ref, account_id, key_hash, amount_pusd, model, created_at)."""
    params: dict[str, Any] = {
        "b_refs": [ref for ref, _, _ in closing],
        "b_kinds": [kind for _, kind, _ in closing],
        "b_charges": [charge for _, _, charge in closing],
        "b_now": now,
        **periods,
    }
    cursor = RawCursor(conn)
    prepared = _FAST_CLOSE.for_dialect(conn.dialect)
    cursor.execute(prepared, params)
    return {row[0]: row for row in cursor.fetchall(prepared)}

"""Ledger writes as units of the group-commit writer: units of one kind in a batch run as one group.

A `CloseUnit` also carries the request's usage record, written by the injected `RecordWriter` in
the same transaction; `ledger` never needs to know what a usage record is. Units are sync functions
of a connection (`run_sync`, `run_group_sync`): the writer runs a whole batch in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from polyroute.billing import ledger_store as store
from polyroute.billing.ledger_types import ClosedReservation, ReserveOutcome
from polyroute.billing.periods import utc_today

Record = dict[str, Any]
RecordWriter = Callable[[Connection, list[Record]], None]
RecordFor = Callable[[ClosedReservation], Record | None]


class ReserveUnit:
    group = "ledger-reserve"

    def __init__(self, request: store.ReserveRequest) -> None:
        self.request = request

    def run_sync(self, conn: Connection) -> ReserveOutcome:
        [outcome] = self.run_group_sync(conn, [self])
        return outcome

    @staticmethod
    def run_group_sync(conn: Connection, units: list[ReserveUnit]) -> list[ReserveOutcome]:
        return store.reserve_many_sync(conn, [unit.request for unit in units], utc_today())


class CloseUnit:
    """Close a reservation (or none, for a free request) and write the request's record with it.

    `record_for` builds the record from what was closed (the sweeper's voids know nothing else)."""

    group = "ledger-close"

    def __init__(
        self,
        request: store.CloseRequest | None,
        write_records: RecordWriter,
        record: Record | None = None,
        record_for: RecordFor | None = None,
    ) -> None:
        self.request = request
        self.write_records = write_records
        self.record = record
        self.record_for = record_for

    def run_sync(self, conn: Connection) -> ClosedReservation | None:
        [closed] = self.run_group_sync(conn, [self])
        return closed

    @staticmethod
    def run_group_sync(conn: Connection, units: list[CloseUnit]) -> list[ClosedReservation | None]:
        requests = [unit.request for unit in units if unit.request is not None]
        closed_iter = iter(store.close_many_sync(conn, requests, utc_today()) if requests else [])
        results: list[ClosedReservation | None] = []
        records: list[Record] = []
        for unit in units:
            closed = next(closed_iter) if unit.request is not None else None
            results.append(closed)
            if unit.record is not None:
                records.append(unit.record)
            elif closed is not None and unit.record_for is not None and (built := unit.record_for(closed)):
                records.append(built)
        if records:
            units[0].write_records(conn, records)
        return results

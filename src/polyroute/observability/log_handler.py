"""A stderr handler that writes the lines logged during one event-loop pass in one system call.

`logging.StreamHandler` writes and flushes every record on its own: one `write` per access line.
In a profile of a pinned worker under load (issue #9) the access line took 8 % of the main thread,
about 2.5 % of it in that write.
Here, once attached to the serving loop, records logged on the loop's thread are formatted at once
(so a line never depends on state that changes later) and kept until the end of the current pass:
the first one schedules a single write for everything the pass logs. Under load a pass finishes
several requests (the ledger's group commit resolves them together), so their lines share a write;
a lone request's line goes out on the very next pass, well under a millisecond later.

Records of WARNING and above, and records from other threads, are written at once, after whatever
the loop has pending, so nothing is reordered within a thread and errors are never held. `flush()`
(called by `logging.shutdown()` at exit, and on detach) writes what is pending; a process killed
with SIGKILL loses at most the lines of the pass it was in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TextIO


class CoalescingStreamHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: list[str] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Coalesce the records logged on `loop`'s thread (call from that thread)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def detach(self) -> None:
        self._loop_thread = None
        self._loop = None
        self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        loop = self._loop
        if loop is None or record.levelno >= logging.WARNING or threading.get_ident() != self._loop_thread:
            self._write_pending()
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._queue(line)

    def _queue(self, line: str) -> None:
        """Keep `line` for the end of this loop pass (the caller holds the lock)."""
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                self._loop.call_soon(self.flush)  # type: ignore[union-attr]  # attached: callers check
            except RuntimeError:  # the loop is closed: no later pass will come
                self._write_pending()

    def on_loop_thread(self) -> bool:
        """True when attached and called from the attached loop's thread (lines are then coalesced)."""
        return self._loop is not None and threading.get_ident() == self._loop_thread

    def emit_line(self, line: str) -> None:
        """Queue a line already formatted by this handler's formatter (access_line.py), as `emit` would
        queue the record's line; only call it on the attached loop's thread."""
        with self.lock:  # type: ignore[union-attr]  # another thread's record may be writing `_pending`
            self._queue(line + self.terminator)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._write_pending()
            super().flush()

    def _write_pending(self) -> None:
        """Write what is pending (the caller holds the handler's lock, as `emit` callers do)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        try:
            self.stream.write("".join(pending))
            self.stream.flush()
        except Exception:  # as StreamHandler.emit: report on stderr, never raise into the caller
            self.handleError(logging.makeLogRecord({"msg": "writing buffered log lines failed"}))


def attach_to_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Attach every coalescing handler on the root logger to the serving loop."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, CoalescingStreamHandler):
            handler.attach(loop)


def detach_from_loop() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, CoalescingStreamHandler):
            handler.detach()

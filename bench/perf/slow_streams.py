"""Hold N concurrent slow streams through the gateway (asyncio, raw sockets, one process).

usage: slow_streams.py PORT BODY_FILE KEY N OPEN_TIMEOUT_S DONE_TIMEOUT_S

Opens N connections at once and POSTs the same streaming request on each. When every stream has
delivered its first content chunk (or OPEN_TIMEOUT_S passed) it prints
`@@OPEN {"open": n, "failed": f, "open_s": t}`; the harness then samples the gateway's RSS and
releases the drip upstream. When every stream has ended it prints
`@@DONE {"ok": n, "failed": f, "errors": {...}}`: ok = HTTP 200 with `data: [DONE]` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path


class Tally:
    def __init__(self) -> None:
        self.opened = 0  # streams that delivered their first content chunk
        self.ok = 0
        self.errors: Counter[str] = Counter()


async def one_stream(port: int, request: bytes, settled: asyncio.Event, tally: Tally) -> None:
    """Open one stream; `settled` is set at its first content chunk, or when it fails first."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        tally.errors[f"connect: {type(error).__name__}"] += 1
        settled.set()
        return
    head, tail, opened, done = b"", b"", False, False
    try:
        writer.write(request)
        while not done:
            data = await reader.read(65536)
            if not data:
                break
            head = head or data[:12]
            tail = tail[-64:] + data
            if not opened and b'"content":"Drip' in tail:
                opened = True
                tally.opened += 1
                settled.set()
            done = b"data: [DONE]" in tail
        if head.startswith(b"HTTP/1.1 200") and done:
            tally.ok += 1
        else:
            tally.errors[f"{head.decode(errors='replace')} done={done}"] += 1
    except OSError as error:
        tally.errors[f"read: {type(error).__name__}"] += 1
    finally:
        settled.set()
        writer.close()


async def main(port: int, body: bytes, key: str, count: int, open_timeout_s: float, done_timeout_s: float) -> None:
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    tally = Tally()
    events = [asyncio.Event() for _ in range(count)]
    start = time.monotonic()
    tasks = [asyncio.create_task(one_stream(port, request, event, tally)) for event in events]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), open_timeout_s)
    report = {"open": tally.opened, "failed": sum(tally.errors.values()), "open_s": round(time.monotonic() - start, 2)}
    print("@@OPEN " + json.dumps(report), flush=True)
    _, pending = await asyncio.wait(tasks, timeout=done_timeout_s)
    for task in pending:
        task.cancel()
    if pending:
        tally.errors["unfinished"] += len(pending)
    result = {"ok": tally.ok, "failed": count - tally.ok, "errors": dict(tally.errors)}
    print("@@DONE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    port_arg, body_file, key_arg, n, open_t, done_t = sys.argv[1:7]
    asyncio.run(main(int(port_arg), Path(body_file).read_bytes(), key_arg, int(n), float(open_t), float(done_t)))

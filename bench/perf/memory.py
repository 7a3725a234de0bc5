"""RSS of the gateway's worker(s), and what N concurrent slow streams add to it.

The holder (`slow_streams.py`, on the load core) opens N streams through the gateway to the drip
upstream, which keeps every stream open until released. Once all N have delivered their first
chunk, the gateway's RSS is sampled for a second (the peak is kept), the drip server is released,
and the holder reports how many streams ended properly.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

import gateway
from procs import Proc, Processes

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent


def hold_streams(
    procs: Processes,
    gw: Proc,
    gw_port: int,
    drip_port: int,
    body: Path,
    key: str,
    count: int,
    cpus: str | None,
    open_timeout_s: float,
) -> Json:
    before = sum(gateway.worker_rss_mb(gw))
    argv = [sys.executable, str(HERE / "slow_streams.py"), str(gw_port), str(body), key, str(count)]
    holder = procs.start(
        "slow-streams", [*argv, str(open_timeout_s), "60"], cpus=cpus, env=gateway.base_env({}), stdout_pipe=True
    )
    result: Json = {"streams": count, "rss_before_mb": round(before, 1)}
    lines = _Lines(holder)
    try:
        opened = lines.wait("@@OPEN", open_timeout_s + 15)
        result.update(opened or {"open": 0, "failed": count, "open_s": None})
        peak = before
        for _ in range(10):  # streams are dripping a chunk every 0.5 s meanwhile
            peak = max(peak, sum(gateway.worker_rss_mb(gw)))
            time.sleep(0.1)
        gateway.http("POST", drip_port, "/release", b"{}")
        done = lines.wait("@@DONE", 75)
        result.update(done or {"ok": 0, "failed": count, "errors": {"holder": "no report"}})
        after = sum(gateway.worker_rss_mb(gw))
        result.update(rss_peak_mb=round(peak, 1), rss_added_mb=round(peak - before, 1), rss_after_mb=round(after, 1))
    finally:
        procs.stop(holder)
    return result


class _Lines:
    """Tagged JSON lines from a child's stdout, with a deadline per wait."""

    def __init__(self, proc: Proc) -> None:
        assert proc.popen.stdout is not None
        self.stream = proc.popen.stdout
        self.pending = b""

    def wait(self, tag: str, timeout_s: float) -> Json | None:
        deadline = time.monotonic() + timeout_s
        prefix = tag.encode() + b" "
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                if line.startswith(prefix):
                    parsed: Json = json.loads(line[len(prefix) :])
                    return parsed
            if time.monotonic() > deadline:
                return None
            ready, _, _ = select.select([self.stream], [], [], 0.2)
            if ready:
                chunk = os.read(self.stream.fileno(), 65536)
                if not chunk:
                    return None
                self.pending += chunk

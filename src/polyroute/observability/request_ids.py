"""Request ids: accept a sane incoming `X-Request-Id` (a proxy's), otherwise make a new one."""

from __future__ import annotations

import os
import random
import re

_SANE = re.compile(rb"[A-Za-z0-9._:@/+=-]{8,128}")


# Ids are unique, not secret: Python's own generator (seeded from the OS) rather than an os.urandom
# system call per request (issue #9); unlike a counter, they tell a client nothing about traffic.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    return f"req-{_random.getrandbits(96):024x}"


def accept_request_id(raw: bytes | None) -> str:
    """The caller's id when it is 8-128 harmless characters (nothing that could forge a log line)."""
    if raw is not None and _SANE.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()

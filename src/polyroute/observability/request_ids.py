"""Request ids: accept a sane incoming `X-Request-Id` (a proxy's), otherwise make a new one."""

from __future__ import annotations

import os
import re

_SANE = re.compile(rb"[A-Za-z0-9._:@/+=-]{8,128}")


def new_request_id() -> str:
    return "req-" + os.urandom(12).hex()


def accept_request_id(raw: bytes | None) -> str:
    """The caller's id when it is 8-128 harmless characters (nothing that could forge a log line)."""
    if raw is not None and _SANE.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()

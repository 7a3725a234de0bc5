"""Identifiers in OpenRouter's forms: generation ids `gen-<unix>-<20 alphanumerics>`."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def new_generation_id(now_s: float | None = None) -> str:
    stamp = int(time.time() if now_s is None else now_s)
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return f"gen-{stamp}-{suffix}"

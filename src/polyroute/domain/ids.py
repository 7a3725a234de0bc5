"""Identifiers in OpenRouter's forms: generation ids `gen-<unix>-<20 alphanumerics>`."""

from __future__ import annotations

import os
import string
import time

_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_LENGTH = 20
# Each random byte mapped to a letter or digit by one `bytes.translate` (byte % 62): 256 = 4 * 62 + 8,
# so 8 of the 62 characters are 5/256 likely rather than 4/256, still about 5.9 bits each, 118 bits
# per id. One system call and three C calls per request, rather than a 20-step base-62 loop.
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))


def new_generation_id(now_s: float | None = None) -> str:
    stamp = int(time.time() if now_s is None else now_s)
    return f"gen-{stamp}-{os.urandom(_SUFFIX_LENGTH).translate(_BYTE_TO_CHAR).decode('ascii')}"

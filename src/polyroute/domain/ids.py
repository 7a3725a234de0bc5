"""Identifiers in OpenRouter's forms: generation ids `gen-<unix>-<20 alphanumerics>`.

The 20 characters are the microsecond within that second (4, base 62 in ASCII order) and 16 random
ones. A generation id keys the ledger's entries, the open reservation and the generation record,
and B-trees take keys that arrive in order at their right edge: with an all-random suffix every
request of a group commit dirtied its own leaf page in each of those indexes, each page then
written whole to SQLite's WAL and copied back at the checkpoint (issue #9). Ids made later sort
later (to the microsecond); they reveal nothing but when they were made, which `<unix>` already
does, and the random part keeps them unguessable.
"""

from __future__ import annotations

import os
import string
import time

_ALPHABET = string.ascii_letters + string.digits
_ORDERED = string.digits + string.ascii_uppercase + string.ascii_lowercase  # ASCII order
_RANDOM_LENGTH = 16
# Each random byte mapped to a letter or digit by one `bytes.translate` (byte % 62): 256 = 4 * 62 + 8,
# so 8 of the 62 characters are 5/256 likely rather than 4/256, still about 5.9 bits each, 95 bits
# per id. One system call and three C calls per request, rather than a base-62 loop.
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))
# Two base-62 places, ascending: a microsecond (< 1,000,000 < 62**4) is two of them.
_PAIRS = [a + b for a in _ORDERED for b in _ORDERED]
_PAIR_COUNT = len(_PAIRS)  # 62 ** 2


def new_generation_id(now_s: float | None = None) -> str:
    now_us = time.time_ns() // 1000 if now_s is None else int(now_s * 1_000_000)
    stamp, micro = divmod(now_us, 1_000_000)
    random_part = os.urandom(_RANDOM_LENGTH).translate(_BYTE_TO_CHAR).decode("ascii")
    return f"gen-{stamp}-{_PAIRS[micro // _PAIR_COUNT]}{_PAIRS[micro % _PAIR_COUNT]}{random_part}"

"""API key material: generate, hash, mask and compare keys of the form `sk-pr-v1-<64 hex>`.

Only `hash_key(key)` is ever stored; like OpenRouter, that SHA-256 hex is the key's public id.
A fast hash is right here: keys carry 256 random bits, so there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "sk-pr-v1-"
KEY_RANDOM_BYTES = 32  # 64 hex characters
_KEY_PATTERN = re.compile(re.escape(KEY_PREFIX) + r"[0-9a-f]{64}")
_MASK_HEAD_CHARS = 3
_MASK_TAIL_CHARS = 4


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_hex(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """SHA-256 hex of the whole key string, prefix included."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def mask_key(key: str) -> str:
    """A display label such as `sk-pr-v1-0e6...1c96`; never enough to use or guess the key."""
    if key.startswith(KEY_PREFIX):
        prefix, body = KEY_PREFIX, key[len(KEY_PREFIX) :]
    else:
        prefix, body = "", key
    if len(body) < 4 * (_MASK_HEAD_CHARS + _MASK_TAIL_CHARS):
        return prefix + "..."  # too short to show any of it safely
    return f"{prefix}{body[:_MASK_HEAD_CHARS]}...{body[-_MASK_TAIL_CHARS:]}"


def keys_match(presented_hash: str, stored_hash: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(presented_hash.encode("utf-8"), stored_hash.encode("utf-8"))


def looks_like_key(s: str) -> bool:
    """True for a well-formed polyroute key (a cheap check before any lookup)."""
    return _KEY_PATTERN.fullmatch(s) is not None

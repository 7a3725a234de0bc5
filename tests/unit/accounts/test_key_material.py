"""API key material: format, hashing, masking and comparison (pure functions)."""

from __future__ import annotations

import hashlib
import re

from polyroute.accounts.keys import (
    KEY_PREFIX,
    generate_key,
    hash_key,
    keys_match,
    looks_like_key,
    mask_key,
)

KNOWN_KEY = "sk-pr-v1-0e6f3a9b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c51c96"


def test_generated_key_is_prefix_and_64_lowercase_hex() -> None:
    key = generate_key()
    assert key.startswith("sk-pr-v1-") and KEY_PREFIX == "sk-pr-v1-"
    assert re.fullmatch(r"[0-9a-f]{64}", key[len(KEY_PREFIX) :])


def test_generated_keys_do_not_repeat() -> None:
    assert len({generate_key() for _ in range(1000)}) == 1000


def test_hash_is_sha256_hex_of_the_whole_key_including_prefix() -> None:
    assert hash_key(KNOWN_KEY) == hashlib.sha256(KNOWN_KEY.encode()).hexdigest()
    assert hash_key(KNOWN_KEY) != hashlib.sha256(KNOWN_KEY[len(KEY_PREFIX) :].encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(KNOWN_KEY))


def test_hash_has_a_fixed_known_value() -> None:
    # Pinned: changing the algorithm would orphan every stored key, so it must not pass silently.
    assert hash_key(KNOWN_KEY) == "ed0dee293e94480d45202b3d36155f89c6f0887529213ce0adb6ded078ca5e46"


def test_mask_shows_prefix_three_leading_and_four_trailing_characters() -> None:
    assert mask_key(KNOWN_KEY) == "sk-pr-v1-0e6...1c96"


def test_mask_never_reveals_any_of_a_short_secret() -> None:
    assert mask_key("") == "..."
    assert mask_key("short-token-1234567") == "..."
    assert mask_key("sk-pr-v1-") == "sk-pr-v1-..."
    assert mask_key("sk-pr-v1-abcdef") == "sk-pr-v1-..."


def test_mask_of_a_foreign_token_keeps_only_its_ends() -> None:
    token = "x" * 10 + "MIDDLE-SECRET" + "y" * 10
    assert mask_key(token) == "xxx...yyyy"


def test_keys_match_compares_hashes_exactly() -> None:
    stored = hash_key(KNOWN_KEY)
    assert keys_match(stored, stored)
    assert not keys_match(hash_key(generate_key()), stored)
    assert not keys_match(stored[:-1], stored)
    assert not keys_match(stored.upper(), stored)


def test_keys_match_is_safe_on_non_ascii_input() -> None:
    assert not keys_match("é" * 64, hash_key(KNOWN_KEY))


def test_looks_like_key_accepts_generated_keys() -> None:
    assert looks_like_key(generate_key())
    assert looks_like_key(KNOWN_KEY)


def test_looks_like_key_rejects_near_misses() -> None:
    body = KNOWN_KEY[len(KEY_PREFIX) :]
    near_misses = [
        "",
        KEY_PREFIX,
        body,
        "sk-or-v1-" + body,  # OpenRouter's prefix, not ours
        KEY_PREFIX + body.upper(),
        KEY_PREFIX + body[:-1],
        KEY_PREFIX + body + "0",
        KNOWN_KEY + "\n",
        " " + KNOWN_KEY,
        KEY_PREFIX + body[:-1] + "g",
    ]
    for candidate in near_misses:
        assert not looks_like_key(candidate), candidate

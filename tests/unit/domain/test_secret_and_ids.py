"""Secrets never print; generation ids follow OpenRouter's form."""

import re

from polyroute.domain.ids import new_generation_id
from polyroute.domain.secret import Secret


def test_secret_never_shows_its_value():
    secret = Secret("sk-canary-123")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}"):
        assert "canary" not in text
    assert secret.reveal() == "sk-canary-123"


def test_generation_ids_have_openrouter_form_and_differ():
    first, second = new_generation_id(1_700_000_000), new_generation_id(1_700_000_000)
    assert re.fullmatch(r"gen-1700000000-[A-Za-z0-9]{20}", first)
    assert first != second


def test_generation_id_suffixes_use_the_whole_alphabet_nearly_evenly():
    counts: dict[str, int] = {}
    for _ in range(2000):
        for char in new_generation_id().rsplit("-", 1)[1]:
            counts[char] = counts.get(char, 0) + 1
    assert len(counts) == 62  # every letter and digit shows up
    mean = 2000 * 20 / 62
    # 8 characters are 5/256 likely, the rest 4/256: at most 1.25x the mean, never a skew beyond noise.
    assert max(counts.values()) < 1.45 * mean and min(counts.values()) > 0.7 * mean

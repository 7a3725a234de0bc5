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


def test_generation_ids_made_later_sort_later() -> None:
    # B-trees keyed by generation id (ledger entries, reservations, records) then take each group
    # commit's inserts at their right edge, one leaf page for the group, not one page per request.
    stamps = [1_700_000_000 + n / 1_000_000 for n in range(0, 3_000_000, 997)]  # three seconds, µs apart
    made = [new_generation_id(now_s) for now_s in stamps]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert made[0].startswith("gen-1700000000-0000") and made[-1].startswith("gen-1700000002-")
    assert all(re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", generation_id) for generation_id in made)
    live = [new_generation_id() for _ in range(2000)]
    times = [generation_id[: len("gen-1700000000-") + 4] for generation_id in live]
    assert times == sorted(times)  # the same microsecond may come twice; its order is the random part's


def test_generation_id_random_parts_use_the_whole_alphabet_nearly_evenly():
    counts: dict[str, int] = {}
    for _ in range(3000):
        for char in new_generation_id().rsplit("-", 1)[1][4:]:
            counts[char] = counts.get(char, 0) + 1
    assert len(counts) == 62  # every letter and digit shows up
    mean = 3000 * 16 / 62
    # 8 characters are 5/256 likely, the rest 4/256: at most 1.25x the mean, never a skew beyond noise.
    assert max(counts.values()) < 1.45 * mean and min(counts.values()) > 0.7 * mean

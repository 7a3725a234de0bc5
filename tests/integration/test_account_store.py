"""AccountStore against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.keys import hash_key, looks_like_key, mask_key
from polyroute.accounts.store import AccountExists, AccountStore, UnknownAccount
from polyroute.db.tables import api_keys


@pytest.fixture
def store(migrated_engine: AsyncEngine) -> AccountStore:
    return AccountStore(migrated_engine)


def assert_aware_utc(moment: datetime | None) -> None:
    assert moment is not None and moment.utcoffset() == timedelta(0), moment


async def test_created_account_is_stored_lowercased_and_found_by_any_case(store: AccountStore) -> None:
    account = await store.create_account("  Alice@Example.COM ", is_admin=True)
    assert account.email == "alice@example.com" and account.is_admin and account.default_model is None
    assert_aware_utc(account.created_at)
    assert await store.get_account(account.id) == account
    assert await store.get_account_by_email("ALICE@example.com") == account
    assert await store.get_account(account.id + 1000) is None
    assert await store.get_account_by_email("bob@example.com") is None


async def test_duplicate_email_raises_account_exists_whatever_the_case(store: AccountStore) -> None:
    await store.create_account("alice@example.com")
    with pytest.raises(AccountExists, match=r"alice@example\.com"):
        await store.create_account("Alice@Example.com")
    assert issubclass(AccountExists, ValueError)


async def test_invalid_email_is_refused(store: AccountStore) -> None:
    for bad in ("", "alice", "@example.com", "alice@", "al ice@example.com"):
        with pytest.raises(ValueError, match="not an email"):
            await store.create_account(bad)


async def test_concurrent_ensure_account_creates_exactly_one(store: AccountStore) -> None:
    results = await asyncio.gather(*(store.ensure_account("Race@Example.com") for _ in range(10)))
    assert len({account.id for account in results}) == 1
    assert [account.email for account in await store.list_accounts()] == ["race@example.com"]


async def test_ensure_account_returns_the_existing_account_unchanged(store: AccountStore) -> None:
    created = await store.create_account("bob@example.com")
    assert await store.ensure_account("BOB@example.com", is_admin=True) == created


async def test_list_accounts_is_ordered_by_id(store: AccountStore) -> None:
    emails = ["c@example.com", "a@example.com", "b@example.com"]
    for email in emails:
        await store.create_account(email)
    assert [account.email for account in await store.list_accounts()] == emails


async def test_create_key_returns_plaintext_once_and_stores_only_its_hash(
    store: AccountStore, migrated_engine: AsyncEngine
) -> None:
    account = await store.create_account("alice@example.com")
    plaintext, key = await store.create_key(account.id, "laptop")
    assert looks_like_key(plaintext)
    assert key.hash == hash_key(plaintext) and key.label == mask_key(plaintext)
    assert (key.account_id, key.name, key.is_management, key.disabled) == (account.id, "laptop", False, False)
    assert key.usable and key.updated_at is None and key.revoked_at is None
    assert_aware_utc(key.created_at)
    async with migrated_engine.connect() as conn:
        stored = [str(value) for row in (await conn.execute(select(api_keys))).all() for value in row]
    assert not any(plaintext[len("sk-pr-v1-") :][:16] in value for value in stored)
    assert await store.find_key(key.hash) == key


async def test_create_key_keeps_limits_and_expiry(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    limit_pusd = 5_000 * 10**12  # $5,000: far beyond 32 bits
    expires_at = datetime(2031, 1, 2, 3, 4, 5, 600000, tzinfo=timezone(timedelta(hours=2)))
    _, key = await store.create_key(
        account.id, "ci", is_management=True, limit_pusd=limit_pusd, limit_reset="monthly", expires_at=expires_at
    )
    found = await store.find_key(key.hash)
    assert found is not None and found.is_management
    assert found.limit_pusd == limit_pusd and isinstance(found.limit_pusd, int)
    assert found.limit_reset == "monthly"
    assert found.expires_at == expires_at
    assert_aware_utc(found.expires_at)


async def test_create_key_for_unknown_account_fails_clearly(store: AccountStore) -> None:
    with pytest.raises(UnknownAccount, match="no account with id 4242"):
        await store.create_key(4242, "orphan")


async def test_create_key_rejects_bad_fields_before_writing(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    bad_calls = [
        {"name": "  "},
        {"name": "x", "limit_pusd": -1},
        {"name": "x", "limit_pusd": 1.5},
        {"name": "x", "limit_reset": "hourly"},
        {"name": "x", "expires_at": datetime(2030, 1, 1)},  # naive
    ]
    for kwargs in bad_calls:
        with pytest.raises(ValueError):
            await store.create_key(account.id, **kwargs)  # type: ignore[arg-type]
    assert await store.list_keys(account.id) == []


async def test_find_key_returns_none_for_unknown_hash(store: AccountStore) -> None:
    assert await store.find_key("0" * 64) is None


async def test_list_keys_filters_by_account_and_hides_revoked_by_default(store: AccountStore) -> None:
    alice = await store.create_account("alice@example.com")
    bob = await store.create_account("bob@example.com")
    _, a1 = await store.create_key(alice.id, "a1")
    _, a2 = await store.create_key(alice.id, "a2")
    _, b1 = await store.create_key(bob.id, "b1")
    assert await store.revoke_key(a2.hash)
    assert [k.hash for k in await store.list_keys()] == [a1.hash, b1.hash]
    assert [k.hash for k in await store.list_keys(alice.id)] == [a1.hash]
    assert [k.hash for k in await store.list_keys(alice.id, include_revoked=True)] == [a1.hash, a2.hash]


async def test_revoked_key_is_unusable_and_revoking_again_keeps_the_first_time(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    _, key = await store.create_key(account.id, "old")
    assert await store.revoke_key(key.hash)
    revoked = await store.find_key(key.hash)
    assert revoked is not None and not revoked.usable
    assert_aware_utc(revoked.revoked_at)
    assert await store.revoke_key(key.hash)
    again = await store.find_key(key.hash)
    assert again is not None and again.revoked_at == revoked.revoked_at


async def test_revoking_an_unknown_key_returns_false(store: AccountStore) -> None:
    assert not await store.revoke_key("f" * 64)


async def test_update_key_changes_only_the_given_fields(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    _, key = await store.create_key(account.id, "before", limit_pusd=100, limit_reset="daily")
    updated = await store.update_key(key.hash, name="after", disabled=True, limit_reset=None)
    assert updated is not None
    assert (updated.name, updated.disabled, updated.limit_reset, updated.limit_pusd) == ("after", True, None, 100)
    assert not updated.usable
    assert_aware_utc(updated.updated_at)
    assert updated.created_at == key.created_at
    assert await store.find_key(key.hash) == updated


async def test_update_key_can_clear_a_limit(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    _, key = await store.create_key(account.id, "capped", limit_pusd=10**12)
    updated = await store.update_key(key.hash, limit_pusd=None)
    assert updated is not None and updated.limit_pusd is None


async def test_rate_limits_are_stored_changed_and_validated(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    _, key = await store.create_key(account.id, "rated", rpm=60, tpm=1_000_000_000)
    assert (key.rpm, key.tpm) == (60, 1_000_000_000)
    updated = await store.update_key(key.hash, rpm=None, tpm=0)
    assert updated is not None and (updated.rpm, updated.tpm) == (None, 0)
    assert await store.find_key(key.hash) == updated  # what the authenticator's cache is filled from
    for bad in (-1, 1_000_000_001, 2.5, True, "10"):
        with pytest.raises(ValueError, match="rpm must be"):
            await store.update_key(key.hash, rpm=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="tpm must be"):
            await store.create_key(account.id, "bad", tpm=bad)  # type: ignore[arg-type]
    assert await store.find_key(key.hash) == updated


async def test_update_key_of_unknown_hash_returns_none(store: AccountStore) -> None:
    assert await store.update_key("e" * 64, name="ghost") is None


async def test_update_key_refuses_fields_it_does_not_own(store: AccountStore) -> None:
    account = await store.create_account("alice@example.com")
    _, key = await store.create_key(account.id, "k")
    for field in ("hash", "account_id", "revoked_at", "is_management"):
        with pytest.raises(ValueError, match="cannot change"):
            await store.update_key(key.hash, **{field: None})  # type: ignore[arg-type]
    assert await store.find_key(key.hash) == key


async def test_foreign_keys_are_enforced(migrated_engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        async with migrated_engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(hash="a" * 64, account_id=999, name="n", label="l", created_at=now)
            )
    async with migrated_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one() == 0

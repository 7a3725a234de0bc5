"""Command line: `polyroute serve | migrate | keys ... | accounts ... | credits ...`.

Commands that use the database first migrate it (idempotent), so a fresh data directory just
works. `keys create` without `--account` uses the operator's account `admin@localhost`, created
as an admin on first use. User errors print one line to stderr and exit 1, never a traceback.
Amounts are USD decimals ("12.50"), converted exactly to pUSD; anything finer than 1 pUSD is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute import __version__
from polyroute.accounts.keys import hash_key, looks_like_key
from polyroute.accounts.passwords import PasswordStore, WeakPassword, hash_password
from polyroute.accounts.store import MAX_RATE_PER_MINUTE, AccountStore, KeyChanges, is_rate_limit
from polyroute.accounts.types import Account, ApiKey
from polyroute.billing import ledger_store
from polyroute.billing.ledger_store import Balance
from polyroute.db.engine import create_engine, safe_url
from polyroute.db.migrate import current_revision, upgrade_database
from polyroute.domain.money import pusd_to_usd_string, usd_to_pusd
from polyroute.settings import Settings, load_settings

DEFAULT_ACCOUNT_EMAIL = "admin@localhost"
T = TypeVar("T")


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except (CliError, ValueError, LookupError) as exc:
        return _fail(str(exc))
    except (OSError, SQLAlchemyError) as exc:
        return _fail(f"database {safe_url(load_settings().database_url)}: {_first_line(exc)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyroute", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"polyroute {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway's HTTP server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default: %(default)s)")
    serve.add_argument("--config", help="operator config file (overrides POLYROUTE_CONFIG)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)

    _add_keys_commands(commands.add_parser("keys", help="create, list and revoke API keys"))
    _add_accounts_commands(commands.add_parser("accounts", help="create and list accounts"))
    _add_credits_commands(commands.add_parser("credits", help="grant credits and show balances"))
    return parser


def _add_keys_commands(keys: argparse.ArgumentParser) -> None:
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="a name to recognise the key by")
    create.add_argument(
        "--account", default=DEFAULT_ACCOUNT_EMAIL, help="owner's email, created if missing (default: %(default)s)"
    )
    create.add_argument("--management", action="store_true", help="a management key (manages keys, no inference)")
    create.add_argument("--credits", metavar="USD", help="grant this many USD of credits to the key's account")
    create.add_argument("--limit", metavar="USD", help="the key's spending limit in USD (default: none)")
    create.add_argument(
        "--limit-reset", choices=("daily", "weekly", "monthly"), help="reset the limit each UTC day, week or month"
    )
    create.add_argument("--expires-at", metavar="ISO", help="expiry, an ISO 8601 UTC date-time")
    _add_rate_arguments(create)
    create.add_argument("--json", action="store_true", help="print a JSON object")
    create.set_defaults(handler=_keys_create)

    update = sub.add_parser("update", help="change an existing key's per-minute rate limits")
    update.add_argument("hash", metavar="HASH", help="the key's hash as shown by `keys list`")
    _add_rate_arguments(update)
    update.add_argument("--json", action="store_true", help="print a JSON object")
    update.set_defaults(handler=_keys_update)

    listing = sub.add_parser("list", help="list keys (never shows the keys themselves)")
    listing.add_argument("--account", help="only this account's keys")
    listing.add_argument("--include-revoked", action="store_true", help="show revoked keys too")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_keys_list)

    revoke = sub.add_parser("revoke", help="revoke a key by its hash")
    revoke.add_argument("hash", metavar="HASH", help="the key's hash as shown by `keys list`")
    revoke.set_defaults(handler=_keys_revoke)


def _add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    rate_help = "the key's own {} per minute: N (0 = no limit) or `default` (the instance's POLYROUTE_KEY_{})"
    parser.add_argument("--rpm", type=_rate, metavar="N", help=rate_help.format("requests", "RPM"))
    parser.add_argument("--tpm", type=_rate, metavar="N", help=rate_help.format("tokens", "TPM"))


_DEFAULT_RATE = -1  # `--rpm default`: back to the instance default (NULL in api_keys)


def _rate(text: str) -> int:
    if text.strip().lower() == "default":
        return _DEFAULT_RATE
    if not text.strip().isdigit() or not is_rate_limit(int(text)):
        raise argparse.ArgumentTypeError(f"expected 0..{MAX_RATE_PER_MINUTE} or `default`, got {text!r}")
    return int(text)


def _rate_value(parsed: int | None) -> int | None:
    return None if parsed is None or parsed == _DEFAULT_RATE else parsed


def _add_accounts_commands(accounts: argparse.ArgumentParser) -> None:
    sub = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create an account")
    create.add_argument("email", metavar="EMAIL")
    create.add_argument("--admin", action="store_true", help="may use the admin API and pages")
    password = create.add_mutually_exclusive_group()
    password.add_argument("--password", action="store_true", help="prompt for a web sign-in password")
    password.add_argument("--password-stdin", action="store_true", help="read the web sign-in password from stdin")
    create.set_defaults(handler=_accounts_create)

    listing = sub.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_accounts_list)


def _add_credits_commands(credits: argparse.ArgumentParser) -> None:
    sub = credits.add_subparsers(dest="credits_command", required=True, metavar="ACTION")
    grant = sub.add_parser("grant", help="add credits (USD) to an account")
    grant.add_argument("--account", required=True, help="the account's email")
    grant.add_argument("--amount", required=True, metavar="USD", help='e.g. "25" or "0.50"')
    grant.add_argument("--note", help="a note kept with the ledger entry")
    grant.add_argument(
        "--ref",
        help="the grant's id (default: a new one); a grant run again with the same --ref adds nothing more",
    )
    grant.add_argument("--json", action="store_true", help="print a JSON object")
    grant.set_defaults(handler=_credits_grant)

    show = sub.add_parser("show", help="show an account's credits, usage, reservations and balance")
    show.add_argument("--account", required=True, help="the account's email")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.set_defaults(handler=_credits_show)


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1 or not 0 < args.port < 65536:
        raise CliError("--workers must be at least 1 and --port between 1 and 65535")
    settings = load_settings(config_path=args.config)
    from polyroute.http.server import serve  # the web stack loads only for this command; it migrates

    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def migrate() -> str | None:
        await upgrade_database(settings.database_url)
        return await current_revision(settings.database_url)

    revision = asyncio.run(migrate())
    print(f"database {safe_url(settings.database_url)} is at revision {revision}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    grant_pusd = _usd_amount(args.credits, "--credits") if args.credits is not None else None
    limit_pusd = None if args.limit is None else usd_to_pusd(args.limit)
    expires_at = None if args.expires_at is None else _utc_datetime(args.expires_at)

    async def create(engine: AsyncEngine) -> tuple[str, ApiKey, Account, Balance | None]:
        store = AccountStore(engine)
        account = await store.ensure_account(args.account, is_admin=args.account == DEFAULT_ACCOUNT_EMAIL)
        key, record = await store.create_key(
            account.id,
            args.name,
            is_management=args.management,
            limit_pusd=limit_pusd,
            limit_reset=args.limit_reset,
            expires_at=expires_at,
            rpm=_rate_value(args.rpm),
            tpm=_rate_value(args.tpm),
        )
        balance = (
            None if grant_pusd is None else await _grant(engine, account.id, grant_pusd, f"with key {record.hash}")
        )
        return key, record, account, balance

    key, record, account, balance = _with_engine(load_settings(), create)
    if args.json:
        extra = {} if balance is None else {"account_balance_usd": pusd_to_usd_string(balance.balance_pusd)}
        _print_json({"key": key, **_key_json(record, account.email), **extra})
    else:
        print(key)
        print(f"polyroute: this key is shown only once; its hash is {record.hash}", file=sys.stderr)
        if balance is not None:
            print(f"polyroute: {account.email} now has {_usd(balance.balance_pusd)}", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    async def fetch(store: AccountStore) -> tuple[list[ApiKey], dict[int, str]]:
        account_id = None
        if args.account is not None:
            account = await store.get_account_by_email(args.account)
            if account is None:
                raise CliError(f"no account with email {args.account}")
            account_id = account.id
        keys = await store.list_keys(account_id, include_revoked=args.include_revoked)
        return keys, {account.id: account.email for account in await store.list_accounts()}

    keys, emails = _with_store(load_settings(), fetch)
    if args.json:
        _print_json([_key_json(key, emails.get(key.account_id, "")) for key in keys])
        return 0
    rows = [["HASH", "LABEL", "NAME", "ACCOUNT", "KIND", "STATUS"]]
    for key in keys:
        kind = "management" if key.is_management else "inference"
        rows.append([key.hash, key.label, key.name, emails.get(key.account_id, ""), kind, _status(key)])
    print(_table(rows))
    return 0


def _keys_update(args: argparse.Namespace) -> int:
    key_hash = hash_key(args.hash) if looks_like_key(args.hash) else args.hash.strip().lower()
    changes: KeyChanges = {}
    if args.rpm is not None:
        changes["rpm"] = _rate_value(args.rpm)
    if args.tpm is not None:
        changes["tpm"] = _rate_value(args.tpm)
    if not changes:
        raise CliError("nothing to change: give --rpm and/or --tpm")
    settings = load_settings()

    async def update(store: AccountStore) -> ApiKey | None:
        updated = await store.update_key(key_hash, **changes)
        if updated is not None:
            await _invalidate_key(settings, key_hash)
        return updated

    updated = _with_store(settings, update)
    if updated is None:
        raise CliError(f"no API key with hash {key_hash}")
    if args.json:
        _print_json(_key_json(updated, ""))
    else:
        print(f"updated {updated.label} ({updated.name}): rpm {_rate_text(updated.rpm)}, tpm {_rate_text(updated.tpm)}")
    return 0


def _rate_text(rate: int | None) -> str:
    return "default" if rate is None else "unlimited" if rate == 0 else str(rate)


async def _invalidate_key(settings: Settings, key_hash: str) -> None:
    """Tell running gateways to drop the key from their caches now (else they see it within the cache TTL).

    Same channel and message as `cache_bus.CacheBus` (`<prefix>invalidate`, `key:<hash>`); best effort.
    """
    if settings.redis_url is None:
        return
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        await client.publish(settings.limits.redis_prefix + "invalidate", f"key:{key_hash}")
    except (RedisError, OSError) as exc:
        print(f"polyroute: gateways not notified ({exc}); they catch up within the key cache TTL", file=sys.stderr)
    finally:
        await client.aclose()


def _keys_revoke(args: argparse.Namespace) -> int:
    key_hash = hash_key(args.hash) if looks_like_key(args.hash) else args.hash.strip().lower()

    settings = load_settings()

    async def revoke(store: AccountStore) -> ApiKey | None:
        if not await store.revoke_key(key_hash):
            return None
        await _invalidate_key(settings, key_hash)
        return await store.find_key(key_hash)

    revoked = _with_store(settings, revoke)
    if revoked is None:
        raise CliError(f"no API key with hash {key_hash}")
    print(f"revoked {revoked.label} ({revoked.name})")
    return 0


def _accounts_create(args: argparse.Namespace) -> int:
    password_hash = _new_password_hash(args) if args.password or args.password_stdin else None

    async def create(engine: AsyncEngine) -> Account:
        account = await AccountStore(engine).create_account(args.email, is_admin=args.admin)
        if password_hash is not None:
            await PasswordStore(engine).set_hash(account.id, password_hash)
        return account

    account = _with_engine(load_settings(), create)
    print(f"created account {account.id} {account.email}{' (admin)' if account.is_admin else ''}")
    return 0


def _new_password_hash(args: argparse.Namespace) -> str:
    """Argon2id hash of a password read from stdin or prompted twice; checked before any account exists."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("the passwords differ")
    try:
        return hash_password(password)
    except WeakPassword as exc:
        raise CliError(f"password: {exc}") from None


def _accounts_list(args: argparse.Namespace) -> int:
    async def fetch(engine: AsyncEngine) -> list[tuple[Account, Balance | None]]:
        found = await AccountStore(engine).list_accounts()
        async with engine.connect() as conn:
            return [(account, await ledger_store.read_balance(conn, account.id)) for account in found]

    accounts = _with_engine(load_settings(), fetch)
    if args.json:
        _print_json([{**_account_json(account), **_balance_json(balance)} for account, balance in accounts])
        return 0
    rows = [["ID", "EMAIL", "ADMIN", "BALANCE", "CREATED"]]
    for account, balance in accounts:
        admin = "yes" if account.is_admin else "no"
        usd = _usd(0 if balance is None else balance.balance_pusd)
        rows.append([str(account.id), account.email, admin, usd, account.created_at.isoformat()])
    print(_table(rows))
    return 0


def _credits_grant(args: argparse.Namespace) -> int:
    amount_pusd = _usd_amount(args.amount, "--amount")

    ref = args.ref or f"grant-{uuid.uuid4().hex}"

    async def grant(engine: AsyncEngine) -> tuple[Account, Balance]:
        account = await _existing_account(engine, args.account)
        return account, await _grant(engine, account.id, amount_pusd, args.note, ref)

    try:
        account, balance = _with_engine(load_settings(), grant)
    except (OSError, SQLAlchemyError) as exc:
        # The COMMIT may have landed: the same --ref makes a second run safe.
        raise CliError(
            f"database {safe_url(load_settings().database_url)}: {_first_line(exc)}; the grant may or may not "
            f"have been made: run the same command again with --ref {ref} (it is never added twice)"
        ) from exc
    if args.json:
        _print_json(
            {
                "account": account.email,
                "granted_usd": pusd_to_usd_string(amount_pusd),
                "ref": ref,
                **_balance_json(balance),
            }
        )
    else:
        print(f"granted {_usd(amount_pusd)} to {account.email}; balance {_usd(balance.balance_pusd)} (ref {ref})")
    return 0


def _credits_show(args: argparse.Namespace) -> int:
    async def show(engine: AsyncEngine) -> tuple[Account, Balance | None]:
        account = await _existing_account(engine, args.account)
        async with engine.connect() as conn:
            return account, await ledger_store.read_balance(conn, account.id)

    account, balance = _with_engine(load_settings(), show)
    body = {"account": account.email, **_balance_json(balance)}
    if args.json:
        _print_json(body)
    else:
        print("\n".join(f"{name}: {value}" for name, value in body.items()))
    return 0


async def _existing_account(engine: AsyncEngine, email: str) -> Account:
    account = await AccountStore(engine).get_account_by_email(email)
    if account is None:
        raise CliError(f"no account with email {email} (create it with `polyroute accounts create`)")
    return account


async def _grant(
    engine: AsyncEngine, account_id: int, amount_pusd: int, note: str | None, ref: str | None = None
) -> Balance:
    async with engine.begin() as conn:
        return await ledger_store.grant(conn, account_id, amount_pusd, ref or f"grant-{uuid.uuid4().hex}", note)


def _usd_amount(text: str, flag: str) -> int:
    amount = usd_to_pusd(text)
    if amount <= 0:
        raise CliError(f"{flag} must be a positive amount of USD")
    return amount


def _utc_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _usd(amount_pusd: int) -> str:
    return ("-$" if amount_pusd < 0 else "$") + pusd_to_usd_string(abs(amount_pusd))


def _balance_json(balance: Balance | None) -> dict[str, str]:
    credits, spent, reserved = (
        (0, 0, 0) if balance is None else (balance.credits_pusd, balance.spent_pusd, balance.reserved_pusd)
    )
    return {
        "credits_usd": pusd_to_usd_string(credits),
        "usage_usd": pusd_to_usd_string(spent),
        "reserved_usd": pusd_to_usd_string(reserved),
        "balance_usd": ("-" if credits < spent else "") + pusd_to_usd_string(abs(credits - spent)),
    }


def _with_store(settings: Settings, work: Callable[[AccountStore], Awaitable[T]]) -> T:
    """Migrate, open an engine, run `work` with an AccountStore, and close the engine."""
    return _with_engine(settings, lambda engine: work(AccountStore(engine)))


def _with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Migrate, open an engine, run `work` with it, and close it."""

    async def go() -> T:
        await upgrade_database(settings.database_url)
        engine = create_engine(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _key_json(key: ApiKey, email: str) -> dict[str, Any]:
    return {
        "hash": key.hash,
        "name": key.name,
        "label": key.label,
        "account": email,
        "account_id": key.account_id,
        "is_management": key.is_management,
        "disabled": key.disabled,
        "limit_pusd": key.limit_pusd,
        "limit_reset": key.limit_reset,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "created_at": _iso(key.created_at),
        "updated_at": _iso(key.updated_at),
        "expires_at": _iso(key.expires_at),
        "revoked_at": _iso(key.revoked_at),
    }


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "is_admin": account.is_admin,
        "default_model": account.default_model,
        "created_at": _iso(account.created_at),
    }


def _status(key: ApiKey) -> str:
    return "revoked" if key.revoked_at is not None else "disabled" if key.disabled else "active"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def _first_line(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def _fail(message: str) -> int:
    print(f"polyroute: error: {message}", file=sys.stderr)
    return 1

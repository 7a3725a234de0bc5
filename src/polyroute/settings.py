"""Process settings: the only module that reads environment variables.

Everything else receives a `Settings` (or the `env` mapping it carries, for provider keys).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from polyroute.domain.secret import Secret


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"environment variable {name}: expected a number, got {raw!r}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"environment variable {name}: expected an integer, got {raw!r}") from exc


def _tracing(env: Mapping[str, str]) -> str:
    raw = (env.get("POLYROUTE_TRACING") or "off").strip().lower()
    if raw in ("off", "none", "0", "false"):
        return "off"
    if raw == "otlp":
        return raw
    raise SystemExit(f"environment variable POLYROUTE_TRACING: expected off or otlp, got {raw!r}")


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` / `postgres://` / `sqlite://` URLs and pick our async drivers."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0  # time to the upstream's first byte (TTFT bound)
    idle_s: float = 120.0  # longest silence between two upstream stream chunks
    keepalive_s: float = 5.0  # interval of `: OPENROUTER PROCESSING` comments while waiting


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Request-rate limits (docs/deploy.md). 0 turns an operator limit off; the free tier is OpenRouter's."""

    key_rpm: int = 0  # requests per minute per API key
    key_tpm: int = 0  # tokens per minute per API key (prompt estimate + max_tokens, at admission)
    account_rpm: int = 0
    account_tpm: int = 0
    max_in_flight: int = 0  # requests in progress per process; beyond it: 503 at once
    free_rpm: int = 20  # `:free` model requests per minute per account
    free_rpd: int = 50  # ... per UTC day per account, below the credits threshold
    free_rpd_with_credits: int = 1000  # ... once the account has bought at least the threshold
    free_credits_threshold_usd: int = 10
    redis_prefix: str = "polyroute:"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str
    config_path: Path | None
    log_level: str = "INFO"
    log_format: str = "auto"  # json | text | auto (text on a terminal); see docs/operations.md
    metrics_token: Secret | None = None  # Bearer token for GET /metrics; unset: /metrics answers 404
    tracing: str = "off"  # off | otlp: OpenTelemetry traces, exporter configured by OTEL_* (docs/operations.md)
    max_body_bytes: int = 16 * 1024 * 1024
    key_cache_ttl_s: float = 1.0
    reservation_lease_s: float = 60.0  # a dead process's credit reservations are voided this long after it stops
    timeouts: Timeouts = field(default_factory=Timeouts)
    redis_url: str | None = None  # shared limits and cache invalidation across processes (scale-out)
    routing_seed: int | None = None  # seeds the load balancer's draws (reproducible routing); None: system randomness
    limits: LimitSettings = field(default_factory=LimitSettings)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str] | None = None, *, config_path: str | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data_dir = Path(env.get("POLYROUTE_DATA_DIR") or "./polyroute-data").resolve()
    db_url = env.get("POLYROUTE_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'polyroute.db'}"
    config = config_path or env.get("POLYROUTE_CONFIG") or None
    return Settings(
        data_dir=data_dir,
        database_url=normalize_database_url(db_url),
        config_path=Path(config).resolve() if config else None,
        log_level=(env.get("POLYROUTE_LOG_LEVEL") or "INFO").upper(),
        log_format=(env.get("POLYROUTE_LOG_FORMAT") or "auto").lower(),
        metrics_token=Secret(env["POLYROUTE_METRICS_TOKEN"]) if env.get("POLYROUTE_METRICS_TOKEN") else None,
        tracing=_tracing(env),
        max_body_bytes=_int(env, "POLYROUTE_MAX_BODY_BYTES", 16 * 1024 * 1024),
        key_cache_ttl_s=_float(env, "POLYROUTE_KEY_CACHE_TTL_S", 1.0),
        reservation_lease_s=_float(env, "POLYROUTE_RESERVATION_LEASE_S", 60.0),
        timeouts=Timeouts(
            connect_s=_float(env, "POLYROUTE_CONNECT_TIMEOUT_S", 10.0),
            first_byte_s=_float(env, "POLYROUTE_FIRST_BYTE_TIMEOUT_S", 120.0),
            idle_s=_float(env, "POLYROUTE_IDLE_TIMEOUT_S", 120.0),
            keepalive_s=_float(env, "POLYROUTE_KEEPALIVE_S", 5.0),
        ),
        redis_url=env.get("POLYROUTE_REDIS_URL") or None,
        routing_seed=_int(env, "POLYROUTE_ROUTING_SEED", 0) if env.get("POLYROUTE_ROUTING_SEED") else None,
        limits=LimitSettings(
            key_rpm=_int(env, "POLYROUTE_KEY_RPM", 0),
            key_tpm=_int(env, "POLYROUTE_KEY_TPM", 0),
            account_rpm=_int(env, "POLYROUTE_ACCOUNT_RPM", 0),
            account_tpm=_int(env, "POLYROUTE_ACCOUNT_TPM", 0),
            max_in_flight=_int(env, "POLYROUTE_MAX_IN_FLIGHT", 0),
            free_rpm=_int(env, "POLYROUTE_FREE_RPM", 20),
            free_rpd=_int(env, "POLYROUTE_FREE_RPD", 50),
            free_rpd_with_credits=_int(env, "POLYROUTE_FREE_RPD_WITH_CREDITS", 1000),
            free_credits_threshold_usd=_int(env, "POLYROUTE_FREE_CREDITS_THRESHOLD_USD", 10),
            redis_prefix=env.get("POLYROUTE_REDIS_PREFIX") or "polyroute:",
        ),
        env=env,
    )

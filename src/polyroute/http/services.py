"""The process's long-lived services, built once at startup and shared by every request."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.accounts.authenticator import KeyAuthenticator
from polyroute.accounts.provider_defaults import AccountProviderDefaults
from polyroute.accounts.store import AccountStore
from polyroute.billing.leases import LeaseKeeper
from polyroute.billing.ledger import Ledger
from polyroute.cache_bus import CacheBus
from polyroute.catalog.catalog import Catalog, load_catalog
from polyroute.db.engine import create_engine
from polyroute.db.migrate import upgrade_database
from polyroute.db.write_batcher import WriteBatcher
from polyroute.http.model_views import ModelViews
from polyroute.limits.concurrency import ConcurrencyGate
from polyroute.limits.limiter import RequestLimiter
from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.redis_store import RedisLimitStore
from polyroute.limits.resilient_store import ResilientLimitStore
from polyroute.limits.store import LimitStore
from polyroute.observability.tracing import start_tracing, stop_tracing, upstream_trace_configs
from polyroute.providers.registry import ProviderPool, supported_dialects
from polyroute.relay import Relay, void_record
from polyroute.routing.health import HealthStore, MemoryHealth
from polyroute.routing.redis_health import SharedHealth
from polyroute.settings import Settings
from polyroute.usage_log.store import GenerationStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    catalog: Catalog
    accounts: AccountStore
    authenticator: KeyAuthenticator
    generations: GenerationStore
    writer: WriteBatcher
    ledger: Ledger
    leases: LeaseKeeper
    providers: ProviderPool
    relay: Relay
    models: ModelViews
    limiter: RequestLimiter
    gate: ConcurrencyGate
    provider_defaults: AccountProviderDefaults
    bus: CacheBus | None = None


def build_catalog(settings: Settings) -> Catalog:
    """Load the built-in catalog and the operator's config; a bad config stops the start."""
    return load_catalog(settings.env, settings.config_path, supported_dialects())


async def start_services(settings: Settings) -> Services:
    started = time.perf_counter()
    start_tracing(settings)  # per process: each worker has its own exporter (docs/operations.md)
    catalog = build_catalog(settings)
    await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url)
    accounts = AccountStore(engine)
    generations = GenerationStore(engine)
    writer = WriteBatcher(engine)
    writer.start()
    ledger = Ledger(
        engine,
        writer,
        write_records=GenerationStore.insert_rows,
        lease_s=settings.reservation_lease_s,
        balance_ttl_s=settings.key_cache_ttl_s,
    )
    leases = LeaseKeeper(ledger, writer, record_for=void_record)
    await leases.start()  # voids what a process that died left reserved
    providers = ProviderPool(settings.timeouts, trace_configs=upstream_trace_configs())
    rng = random.Random(settings.routing_seed) if settings.routing_seed is not None else None
    health = await start_health(settings)
    relay = Relay(catalog, providers, ledger, keepalive_s=settings.timeouts.keepalive_s, health=health, rng=rng)
    authenticator = KeyAuthenticator(accounts, settings.key_cache_ttl_s)
    bus = await start_cache_bus(settings, authenticator)
    provider_defaults = AccountProviderDefaults(engine, settings.key_cache_ttl_s)
    if bus is not None:  # a changed account preference reaches every process at once
        bus.on("prefs", provider_defaults.forget_local)
        provider_defaults.on_forget = lambda account_id: bus.publish("prefs", str(account_id))
    services = Services(
        settings=settings,
        engine=engine,
        catalog=catalog,
        accounts=accounts,
        authenticator=authenticator,
        generations=generations,
        writer=writer,
        ledger=ledger,
        leases=leases,
        providers=providers,
        relay=relay,
        models=ModelViews(catalog, relay.health),
        limiter=RequestLimiter(limit_store(settings), settings.limits),
        gate=ConcurrencyGate(settings.limits.max_in_flight),
        provider_defaults=provider_defaults,
        bus=bus,
    )
    log.info(
        "ready in %.0f ms: %d models routable of %d known",
        (time.perf_counter() - started) * 1000,
        len(catalog.list_models()),
        len(catalog.list_models(include_unavailable=True)),
    )
    return services


def limit_store(settings: Settings) -> LimitStore:
    """Redis (shared, exact across processes) with a per-process fallback, or memory alone."""
    if settings.redis_url is None:
        return MemoryLimitStore()
    prefix = settings.limits.redis_prefix + "limits:"
    return ResilientLimitStore(RedisLimitStore.from_url(settings.redis_url, prefix=prefix))


async def start_health(settings: Settings) -> HealthStore:
    """Endpoint stats: in this process, and with Redis shared with every other process (docs/routing.md)."""
    if settings.redis_url is None:
        return MemoryHealth()
    shared = SharedHealth(MemoryHealth(), settings.redis_url, stream_key=settings.limits.redis_prefix + "health")
    await shared.start()
    return shared


async def start_cache_bus(settings: Settings, authenticator: KeyAuthenticator) -> CacheBus | None:
    """With Redis, a key dropped from one process's cache is dropped from every process's at once."""
    if settings.redis_url is None:
        return None
    bus = CacheBus(settings.redis_url, channel=settings.limits.redis_prefix + "invalidate")
    bus.on("key", authenticator.forget_local)
    authenticator.on_forget = lambda key_hash: bus.publish("key", key_hash)
    await bus.start()
    return bus


async def stop_services(services: Services) -> None:
    # In-flight requests have finished (or been cancelled) by now; their settles may still run.
    await services.ledger.wait_finishing()
    if services.bus is not None:
        await services.bus.aclose()
    if isinstance(services.relay.health, SharedHealth):
        await services.relay.health.aclose()
    await services.limiter.aclose()
    await services.leases.aclose()
    await services.writer.aclose()
    await services.providers.aclose()
    await services.engine.dispose()
    await asyncio.to_thread(stop_tracing)  # exports the last spans

"""The web app's services, built on first use from the gateway's shared ones (same engine, catalog)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from polyroute.accounts.passwords import PasswordStore
from polyroute.accounts.sessions import SessionStore
from polyroute.http.services import Services
from polyroute.limits.memory_store import MemoryLimitStore
from polyroute.limits.redis_store import RedisLimitStore
from polyroute.limits.resilient_store import ResilientLimitStore
from polyroute.limits.store import LimitStore
from polyroute.settings import Settings
from polyroute.web.credit_codes import CreditCodeStore
from polyroute.web.instance import InstanceSettings
from polyroute.web.login_limits import LoginLimiter


@dataclass(slots=True)
class WebServices:
    core: Services
    sessions: SessionStore
    passwords: PasswordStore
    codes: CreditCodeStore
    instance: InstanceSettings
    limiter: LoginLimiter


def login_limit_store(settings: Settings) -> LimitStore:
    """Sign-in failures: in Redis (shared by every process) when configured, else in this process."""
    if settings.redis_url is None:
        return MemoryLimitStore()
    prefix = settings.limits.redis_prefix + "limits:"  # the API limits' namespace; keys start with `login:`
    return ResilientLimitStore(RedisLimitStore.from_url(settings.redis_url, prefix=prefix))


async def close_web_services(state: object) -> None:
    """At shutdown: the sign-in limiter's store connection (if the web app was used at all)."""
    found: WebServices | None = getattr(state, "web", None)
    if found is not None:
        await found.limiter.aclose()


def web_services(request: Request) -> WebServices:
    state = request.app.state
    found: WebServices | None = getattr(state, "web", None)
    core: Services = state.services
    if found is None or found.core is not core:
        engine = core.engine
        found = WebServices(
            core=core,
            sessions=SessionStore(engine),
            passwords=PasswordStore(engine),
            codes=CreditCodeStore(engine),
            instance=InstanceSettings(engine),
            limiter=LoginLimiter(login_limit_store(core.settings)),
        )
        state.web = found
    return found

"""The web app's services, built on first use from the gateway's shared ones (same engine, catalog)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from polyroute.accounts.passwords import PasswordStore
from polyroute.accounts.sessions import SessionStore
from polyroute.http.services import Services
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
            limiter=LoginLimiter(),
        )
        state.web = found
    return found

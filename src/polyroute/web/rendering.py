"""Jinja2 templates (autoescaped) from this package, and the filters the pages share."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from polyroute.domain.money import pusd_to_usd_string

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def usd(amount_pusd: int | None, digits: int = 6) -> str:
    """`$1.25`, `$0.000012`: at most `digits` decimals, trailing zeros dropped, never scientific."""
    if amount_pusd is None:
        return "—"
    sign = "-" if amount_pusd < 0 else ""
    text = pusd_to_usd_string(abs(amount_pusd))
    whole, _, frac = text.partition(".")
    frac = frac[:digits].rstrip("0")
    return f"{sign}${whole}{'.' + frac if frac else ''}"


def per_million(price_pusd_per_token: int) -> str:
    """A per-token price as USD per million tokens."""
    return usd(price_pusd_per_token * 1_000_000, 4)


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(usd=usd, per_million=per_million, when=when)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: `user`, `csrf_token` and the current path are available to every template."""
    state = request.state
    context.setdefault("user", getattr(state, "user", None))
    context.setdefault("csrf_token", getattr(state, "csrf_token", ""))
    context.setdefault("path", request.url.path)
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

"""Credits: balance, ledger history, redeeming a credit code."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from polyroute.billing import ledger_store
from polyroute.web.auth import page
from polyroute.web.queries import ledger_history
from polyroute.web.rendering import render, usd
from polyroute.web.state import web_services


async def credits_page(request: Request, status: int = 200, **context: object) -> Response:
    core = web_services(request).core
    account_id = request.state.user.id
    async with core.engine.connect() as conn:
        balance = await ledger_store.read_balance(conn, account_id)
    history = await ledger_history(core.engine, account_id)
    return render(request, "credits.html", status=status, balance=balance, history=history, **context)


@page()
async def credits(request: Request) -> Response:
    return await credits_page(request)


@page()
async def redeem(request: Request) -> Response:
    code = request.state.form.get("code", "").strip()
    amount = await web_services(request).codes.redeem(code, request.state.user.id) if code else None
    if amount is None:
        return await credits_page(request, status=400, error="That code is not valid or was already used.")
    web_services(request).core.ledger.balance_changed(request.state.user.id)
    return await credits_page(request, notice=f"Added {usd(amount)} to your balance.")

"""Which limits a chat request meets, decided in one store call, and the 429 a refusal becomes.

Free tier (OpenRouter's rules for `:free` model requests, per account, never per key): 20 requests
a minute, and 50 a UTC day, or 1000 a day once the account has bought at least $10 of credits.
Operator limits (all optional): requests and tokens per minute per key and per account.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from polyroute.domain.errors import RateLimited
from polyroute.domain.money import PUSD_PER_USD
from polyroute.limits.rules import DAY_US, US_PER_S, Clock, Rule, Verdict
from polyroute.limits.store import LimitStore
from polyroute.settings import LimitSettings

MINUTE_US = 60 * US_PER_S


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking and for what: enough to pick the rules without touching the database."""

    key_hash: str
    account_id: int
    tokens: int = 0  # prompt estimate + max_tokens, for the tokens-per-minute limits


class RequestLimiter:
    def __init__(self, store: LimitStore, settings: LimitSettings, clock: Clock = wall_clock_us) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    @property
    def has_operator_limits(self) -> bool:
        s = self._settings
        return bool(s.key_rpm or s.key_tpm or s.account_rpm or s.account_tpm)

    def operator_rules(self, subject: Subject) -> list[Rule]:
        s = self._settings
        rules = []
        if s.key_rpm:
            rules.append(Rule(f"k:{subject.key_hash}:rpm", "gcra", s.key_rpm, MINUTE_US, "key-requests-per-min"))
        if s.account_rpm:
            rules.append(
                Rule(f"a:{subject.account_id}:rpm", "gcra", s.account_rpm, MINUTE_US, "account-requests-per-min")
            )
        tokens = max(0, subject.tokens)
        if s.key_tpm:
            rules.append(Rule(f"k:{subject.key_hash}:tpm", "gcra", s.key_tpm, MINUTE_US, "key-tokens-per-min", tokens))
        if s.account_tpm:
            name = "account-tokens-per-min"
            rules.append(Rule(f"a:{subject.account_id}:tpm", "gcra", s.account_tpm, MINUTE_US, name, tokens))
        return rules

    @property
    def has_token_limits(self) -> bool:
        return bool(self._settings.key_tpm or self._settings.account_tpm)

    def has_free_credits(self, credits_bought_pusd: int) -> bool:
        return credits_bought_pusd >= self._settings.free_credits_threshold_usd * PUSD_PER_USD

    def free_rules(self, account_id: int, credits_bought_pusd: int) -> list[Rule]:
        s = self._settings
        per_day = s.free_rpd_with_credits if self.has_free_credits(credits_bought_pusd) else s.free_rpd
        return [
            Rule(f"a:{account_id}:free:rpm", "gcra", s.free_rpm, MINUTE_US, "free-models-per-min"),
            Rule(f"a:{account_id}:free:rpd", "window", per_day, DAY_US, "free-models-per-day"),
        ]

    async def admit(self, rules: list[Rule], *, free_has_credits: bool = True) -> Verdict:
        """Decide all `rules` at once; raise RateLimited (429) when one refuses."""
        if not rules:
            return Verdict(True, None, 0, 0, 0)
        now_us = self._clock()
        verdict = await self._store.decide(rules, now_us)
        if not verdict.allowed:
            raise self.refusal(verdict, now_us, free_has_credits=free_has_credits)
        return verdict

    def refusal(self, verdict: Verdict, now_us: int, *, free_has_credits: bool) -> RateLimited:
        rule = verdict.rule
        assert rule is not None
        message = f"Rate limit exceeded: {rule.name}."
        if rule.name == "free-models-per-day" and not free_has_credits:
            s = self._settings
            message = (
                f"Rate limit exceeded: free-models-per-day. Add {s.free_credits_threshold_usd} credits to unlock "
                f"{s.free_rpd_with_credits} free model requests per day"
            )
        reset_ms = (now_us + verdict.retry_after_us + 999) // 1000  # when a retry can succeed, ms epoch
        headers = {
            "Retry-After": str(max(1, math.ceil(verdict.retry_after_us / US_PER_S))),
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(verdict.remaining),
            "X-RateLimit-Reset": str(reset_ms),
        }
        return RateLimited(message, headers=headers)

    async def aclose(self) -> None:
        await self._store.aclose()

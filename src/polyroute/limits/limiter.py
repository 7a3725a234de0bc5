"""Which limits a chat request meets, decided in one store call, and the 429 a refusal becomes.

Free tier (OpenRouter's rules for `:free` model requests, per account, never per key): 20 requests
a minute, and 50 a UTC day, or 1000 a day once the account has bought at least $10 of credits.
Operator limits (all optional): requests and tokens per minute per key and per account; a key's own
limits (`api_keys.rpm`/`tpm`) override the instance's key defaults.

Tokens per minute are admitted by an estimate (prompt estimate + `max_tokens`); once the response's
real token count is known, `correct` charges or refunds the difference on the same GCRA buckets, so
the next minute reflects real use (see `rules.gcra_adjust` for the bounds).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from polyroute.domain.errors import RateLimited
from polyroute.domain.money import PUSD_PER_USD
from polyroute.limits.rules import DAY_US, US_PER_S, Clock, Rule, Verdict
from polyroute.limits.store import LimitStore
from polyroute.settings import LimitSettings

MINUTE_US = 60 * US_PER_S
_MAX_CACHED_RULE_SETS = 10_000

log = logging.getLogger(__name__)


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Subject:
    """Who is asking and for what: enough to pick the rules without touching the database."""

    key_hash: str
    account_id: int
    tokens: int = 0  # prompt estimate + max_tokens, for the tokens-per-minute limits
    key_rpm: int | None = None  # the key's own limits; None = the instance default, 0 = no limit
    key_tpm: int | None = None


class RequestLimiter:
    def __init__(self, store: LimitStore, settings: LimitSettings, clock: Clock = wall_clock_us) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        # The requests-per-minute rules of a (key, its own rpm, account): the same immutable rules for
        # every request of a key, built once (two frozen Rules and their keys were ~2 µs a request).
        self._rpm_rules: dict[tuple[str, int | None, int], tuple[Rule, ...]] = {}

    def key_rpm(self, own: int | None) -> int:
        return self._settings.key_rpm if own is None else own

    def key_tpm(self, own: int | None) -> int:
        return self._settings.key_tpm if own is None else own

    def operator_rules(self, subject: Subject) -> list[Rule]:
        cache_key = (subject.key_hash, subject.key_rpm, subject.account_id)
        rpm_rules = self._rpm_rules.get(cache_key)
        if rpm_rules is None:
            if len(self._rpm_rules) >= _MAX_CACHED_RULE_SETS:
                self._rpm_rules.clear()  # bounded: a flood of keys cannot grow memory
            rpm_rules = self._rpm_rules[cache_key] = tuple(self._request_rules(subject))
        return [*rpm_rules, *self.token_rules(subject, max(0, subject.tokens))]

    def _request_rules(self, subject: Subject) -> list[Rule]:
        s = self._settings
        rules = []
        key_rpm = self.key_rpm(subject.key_rpm)
        if key_rpm:
            # The limit is part of the store key: a changed limit starts a fresh bucket rather than
            # reading the old one's time debt at the new rate.
            name = "key-requests-per-min"
            rules.append(Rule(f"k:{subject.key_hash}:rpm:{key_rpm}", "gcra", key_rpm, MINUTE_US, name))
        if s.account_rpm:
            rules.append(
                Rule(f"a:{subject.account_id}:rpm", "gcra", s.account_rpm, MINUTE_US, "account-requests-per-min")
            )
        return rules

    def token_rules(self, subject: Subject, tokens: int) -> list[Rule]:
        """The tokens-per-minute rules of `subject`, each costing `tokens`."""
        rules = []
        key_tpm = self.key_tpm(subject.key_tpm)
        if key_tpm:
            name = "key-tokens-per-min"
            rules.append(Rule(f"k:{subject.key_hash}:tpm:{key_tpm}", "gcra", key_tpm, MINUTE_US, name, tokens))
        account_tpm = self._settings.account_tpm
        if account_tpm:
            name = "account-tokens-per-min"
            rules.append(Rule(f"a:{subject.account_id}:tpm", "gcra", account_tpm, MINUTE_US, name, tokens))
        return rules

    def has_token_limits(self, key_tpm: int | None = None) -> bool:
        """Whether a request of a key whose own tpm is `key_tpm` meets any tokens-per-minute limit."""
        return bool(self.key_tpm(key_tpm) or self._settings.account_tpm)

    async def correct(self, subject: Subject, actual_tokens: int) -> None:
        """True up the tokens-per-minute buckets: charge or refund (actual - estimate) tokens.

        Never raises: a failed correction leaves the admission-time estimate in place.
        """
        units = max(0, actual_tokens) - max(0, subject.tokens)
        rules = self.token_rules(subject, 0)
        if not units or not rules:
            return
        try:
            await self._store.adjust(rules, units, self._clock())
        except Exception:  # the response is already decided; a lost correction only leaves the estimate
            log.warning("tokens-per-minute correction failed", exc_info=True)

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

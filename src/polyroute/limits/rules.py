"""The limit arithmetic, pure and integer: GCRA for rates, a fixed UTC window for daily quotas.

Time is integer microseconds from an injected clock. A decision covers several rules at once and
is all-or-nothing: when any rule refuses, no rule's state changes (so a request refused by the
daily cap does not use up a per-minute slot, and the other way round). The Redis Lua script in
`redis_store.py` is a line-by-line copy of `decide`; the unit tests hold the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

US_PER_S = 1_000_000
DAY_US = 86_400 * US_PER_S

Clock = Callable[[], int]  # now, in integer microseconds since the Unix epoch

Kind = Literal["gcra", "window"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit on one subject: `limit` units per `period_us`.

    `gcra`: a smooth rate that allows a burst of `limit` and then one unit every `period/limit`.
    `window`: at most `limit` units per aligned window (`period_us` = one UTC day for daily caps).
    `name` is what a 429 reports (e.g. `free-models-per-day`); `key` names the subject in the store.
    """

    key: str
    kind: Kind
    limit: int
    period_us: int
    name: str
    cost: int = 1

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_us < 1 or self.cost < 0:
            raise ValueError(f"bad limit rule {self!r}")

    @property
    def interval_us(self) -> int:
        """GCRA emission interval, rounded up so the sustained rate never exceeds limit/period."""
        return -(-self.period_us // self.limit)

    def store_key(self, now_us: int) -> str:
        if self.kind == "window":
            return f"{self.key}:{now_us // self.period_us}"
        return self.key


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for the rule that decided: the first refusing rule, else the tightest admitting one."""

    allowed: bool
    rule: Rule | None
    remaining: int
    retry_after_us: int  # 0 when allowed
    reset_after_us: int  # until the rule's state is back to "full"


ALLOW_ALL = Verdict(allowed=True, rule=None, remaining=0, retry_after_us=0, reset_after_us=0)


def gcra_step(tat_us: int | None, now_us: int, rule: Rule) -> tuple[bool, int, int, int, int]:
    """(allowed, new_tat, remaining, retry_after, reset_after) for one GCRA rule."""
    interval = rule.interval_us
    tolerance = interval * rule.limit
    tat = now_us if tat_us is None or tat_us < now_us else tat_us
    new_tat = tat + rule.cost * interval
    if new_tat - now_us > tolerance:
        retry_after = new_tat - tolerance - now_us
        remaining = max(0, (tolerance - (tat - now_us)) // interval)
        return False, tat, remaining, retry_after, tat - now_us
    remaining = (tolerance - (new_tat - now_us)) // interval
    return True, new_tat, remaining, 0, new_tat - now_us


def window_step(count: int | None, now_us: int, rule: Rule) -> tuple[bool, int, int, int, int]:
    """(allowed, new_count, remaining, retry_after, reset_after) for one fixed-window rule."""
    used = count or 0
    reset_after = rule.period_us - now_us % rule.period_us
    if used + rule.cost > rule.limit:
        return False, used, max(0, rule.limit - used), reset_after, reset_after
    used += rule.cost
    return True, used, rule.limit - used, 0, reset_after


def gcra_adjust(tat_us: int | None, now_us: int, rule: Rule, units: int) -> int | None:
    """The TAT after charging `units` more (> 0) or refunding them (< 0) on an admitted GCRA rule.

    Used to true up an estimate once the real cost is known. A charge moves the TAT later with no
    ceiling (the overuse is paid by waiting). A refund moves it earlier but never before `now`: a
    bucket cannot hold more than its full burst. None when the state is (or becomes) empty.
    """
    tat = now_us if tat_us is None or tat_us < now_us else tat_us
    new_tat = max(now_us, tat + units * rule.interval_us)
    return None if new_tat <= now_us else new_tat


def step(state: int | None, now_us: int, rule: Rule) -> tuple[bool, int, int, int, int]:
    return gcra_step(state, now_us, rule) if rule.kind == "gcra" else window_step(state, now_us, rule)


def decide(states: Sequence[int | None], now_us: int, rules: Sequence[Rule]) -> tuple[Verdict, list[int] | None]:
    """Decide `rules` given their stored states; returns the verdict and the new states (None if refused)."""
    new_states: list[int] = []
    best: tuple[Rule, int, int] | None = None  # (rule, remaining, reset_after) of the tightest so far
    for state, rule in zip(states, rules, strict=True):
        allowed, new_state, remaining, retry_after, reset_after = step(state, now_us, rule)
        if not allowed:
            return Verdict(False, rule, remaining, retry_after, reset_after), None
        new_states.append(new_state)
        if best is None or remaining < best[1]:
            best = (rule, remaining, reset_after)
    if best is None:
        return ALLOW_ALL, new_states
    return Verdict(True, best[0], best[1], 0, best[2]), new_states

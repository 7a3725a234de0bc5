"""Limits decided in this process's memory: exact for one process, per-process when there are many."""

from __future__ import annotations

from collections.abc import Sequence

from polyroute.limits.rules import Rule, Verdict, decide, gcra_adjust

_PRUNE_EVERY = 4096


class MemoryLimitStore:
    def __init__(self) -> None:
        self._states: dict[str, tuple[int, int]] = {}  # store key -> (state, expires_at_us)
        self._decisions = 0

    async def decide(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        return self.decide_now(rules, now_us)

    def decide_now(self, rules: Sequence[Rule], now_us: int) -> Verdict:
        """Synchronous, so nothing can interleave between reading and writing the states."""
        self._maybe_prune(now_us)
        keys = [rule.store_key(now_us) for rule in rules]
        states = [self._state(key, now_us) for key in keys]
        verdict, new_states = decide(states, now_us, rules)
        if new_states is not None:
            for key, rule, state in zip(keys, rules, new_states, strict=True):
                expires = state if rule.kind == "gcra" else now_us - now_us % rule.period_us + rule.period_us
                self._states[key] = (state, expires)
        return verdict

    async def adjust(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        self.adjust_now(rules, units, now_us)

    def adjust_now(self, rules: Sequence[Rule], units: int, now_us: int) -> None:
        for rule in rules:
            if rule.kind != "gcra":
                continue
            key = rule.store_key(now_us)
            new_tat = gcra_adjust(self._state(key, now_us), now_us, rule, units)
            if new_tat is None:
                self._states.pop(key, None)
            else:
                self._states[key] = (new_tat, new_tat)

    def _state(self, key: str, now_us: int) -> int | None:
        held = self._states.get(key)
        if held is None or held[1] <= now_us:
            return None
        return held[0]

    def _maybe_prune(self, now_us: int) -> None:
        self._decisions += 1
        if self._decisions % _PRUNE_EVERY == 0:
            self._states = {k: v for k, v in self._states.items() if v[1] > now_us}

    async def aclose(self) -> None:
        self._states.clear()

"""Every `provider` field and every variant under the seeded load balancer: the same seed gives the same
plan, the field's rule holds whatever the draw, and where the draw still matters it does vary by seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.unit.routing.test_plan_preferences import _pct, _stats, plan

from polyroute.routing.health import EndpointStats, HealthSnapshot

SEEDS = range(60)
# cheap 1, mid 2, dear 4 USD/M: cheap is picked ~76 %, mid ~19 %, dear ~5 % (weights 1/price²).
FAST_MID = _stats(
    cheap=EndpointStats(throughput_tps=_pct(10), ttft_s=_pct(3.0)),
    mid=EndpointStats(throughput_tps=_pct(100), ttft_s=_pct(0.2)),
    dear=EndpointStats(throughput_tps=_pct(50), ttft_s=_pct(1.0)),
)


@dataclass(frozen=True)
class Case:
    provider: dict[str, Any] | None
    holds: Callable[[list[str]], bool]  # the field's rule, checked on every seed's plan
    varies: bool  # True: the draw still picks among several endpoints; False: the field fixes the order
    slugs: str | list[str] = "a/m"
    health: HealthSnapshot | None = None
    params: tuple[str, ...] = field(default=())


CASES: dict[str, Case] = {
    "default": Case(None, lambda p: sorted(p) == ["cheap", "dear", "mid"], True),
    "order": Case({"order": ["dear", "mid"]}, lambda p: p == ["dear", "mid", "cheap"], False),
    "order+allow_fallbacks=false": Case(
        {"order": ["mid", "dear"], "allow_fallbacks": False}, lambda p: p == ["mid", "dear"], False
    ),
    "allow_fallbacks=false": Case({"allow_fallbacks": False}, lambda p: len(p) == 1, True),
    "only": Case({"only": ["mid", "Dear"]}, lambda p: sorted(p) == ["dear", "mid"], True),
    "ignore": Case({"ignore": ["cheap"]}, lambda p: sorted(p) == ["dear", "mid"], True),
    "sort=price": Case({"sort": "price"}, lambda p: p == ["cheap", "mid", "dear"], False),
    "sort=throughput": Case({"sort": "throughput"}, lambda p: p == ["mid", "dear", "cheap"], False, health=FAST_MID),
    "sort=latency": Case({"sort": {"by": "latency"}}, lambda p: p == ["mid", "dear", "cheap"], False, health=FAST_MID),
    "max_price": Case({"max_price": {"prompt": 2, "completion": "2"}}, lambda p: sorted(p) == ["cheap", "mid"], True),
    "require_parameters": Case(
        {"require_parameters": True}, lambda p: sorted(p) == ["dear", "mid"], True, params=("tools",)
    ),
    "data_collection=deny": Case({"data_collection": "deny"}, lambda p: p == ["mid"], False),
    "zdr": Case({"zdr": True}, lambda p: p == ["mid", "b/n@alt"], False, slugs=["a/m", "b/n"]),
    "quantizations": Case({"quantizations": ["fp8", "bf16"]}, lambda p: sorted(p) == ["cheap", "mid"], True),
    "preferred_min_throughput": Case(
        {"preferred_min_throughput": 40}, lambda p: p[-1] == "cheap" and len(p) == 3, True, health=FAST_MID
    ),
    "preferred_max_latency": Case(
        {"preferred_max_latency": {"p90": 1.5}}, lambda p: p[-1] == "cheap" and len(p) == 3, True, health=FAST_MID
    ),
    ":nitro": Case(None, lambda p: p == ["mid", "dear", "cheap"], False, slugs="a/m:nitro", health=FAST_MID),
    ":floor": Case(None, lambda p: p == ["cheap", "mid", "dear"], False, slugs="a/m:floor"),
    ":free": Case(None, lambda p: p == ["a/f@free"], False, slugs="a/f:free"),
}


def run(case: Case, seed: int) -> list[str]:
    return plan(case.slugs, provider=case.provider, seed=seed, health=case.health, params=case.params)


@pytest.mark.parametrize("name", list(CASES))
def test_each_field_and_variant_is_deterministic_for_a_seed_and_keeps_its_rule(name: str) -> None:
    case = CASES[name]
    plans = [run(case, seed) for seed in SEEDS]
    assert plans == [run(case, seed) for seed in SEEDS]  # same seed, same plan
    assert all(case.holds(p) for p in plans), plans
    distinct = {tuple(p) for p in plans}
    assert (len(distinct) > 1) is case.varies, distinct


def test_the_seeded_draw_is_pinned():
    # A change to the load balancer's use of the random source shows here (and breaks reproducibility).
    assert [plan(seed=s)[0] for s in range(12)] == PINNED_FIRSTS


PINNED_FIRSTS = ["mid", "cheap", "dear", "cheap", "cheap", "cheap", "mid", "cheap", "cheap", "cheap", "cheap", "cheap"]

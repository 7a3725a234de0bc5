"""Per-generation metrics and the request context filled from the generation record."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from polyroute.observability.context import RequestContext, bind_request, unbind_request
from polyroute.observability.metrics import metrics, observe_generation, render

ROW = {
    "id": "gen-1",
    "key_hash": "ab" * 32,
    "model": "unit/model",
    "provider": "unit-provider",
    "status": "ok",
    "prompt_tokens": 7,
    "completion_tokens": 11,
    "cost_pusd": 2_000_000,  # 2e-6 USD
    "latency_ms": 120,
    "ttft_ms": 40,
    "prompt": "never read",
}


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_generation_counts_once_with_its_tokens_cost_and_latencies():
    labels = (("model", "unit/model"), ("outcome", "ok"), ("provider", "unit-provider"))
    before = _samples()
    observe_generation(ROW)
    after = _samples()

    def delta(name, labels):
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert delta("polyroute_chat_requests_total", labels) == 1
    tokens = (("direction", "completion"), ("model", "unit/model"), ("provider", "unit-provider"))
    assert delta("polyroute_tokens_total", tokens) == 11
    cost = (("model", "unit/model"), ("provider", "unit-provider"))
    assert abs(delta("polyroute_cost_usd_total", cost) - 2e-6) < 1e-12
    assert delta("polyroute_time_to_first_token_seconds_count", (("provider", "unit-provider"),)) == 1


def test_the_request_context_receives_the_generation_but_never_its_body():
    context = RequestContext("req-unit")
    token = bind_request(context)
    try:
        observe_generation(ROW)
    finally:
        unbind_request(token)
    assert context.model == "unit/model" and context.completion_tokens == 11 and context.generation_ms == 120
    assert "never read" not in repr(context)
    assert metrics() is metrics()

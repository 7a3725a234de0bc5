"""scripts/build_catalog.py: exact price conversion, model matching and a deterministic output file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "build_catalog.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_catalog", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_catalog"] = module  # dataclasses look the module up while creating classes
    spec.loader.exec_module(module)
    return module


build_catalog = _load_script()


def test_prices_convert_exactly_from_the_written_decimal() -> None:
    assert build_catalog.usd_per_unit_to_pusd(2.5e-06) == 2_500_000
    assert build_catalog.usd_per_unit_to_pusd(1e-09) == 1_000
    assert build_catalog.usd_per_unit_to_pusd(0) == 0
    assert build_catalog.usd_per_unit_to_pusd(0.0048) == 4_800_000_000  # per image


def test_binary_float_noise_below_one_pusd_rounds_half_up() -> None:
    assert build_catalog.usd_per_unit_to_pusd(8.900000000000001e-07) == 890_000
    assert build_catalog.usd_per_unit_to_pusd(9.499999999999999e-07) == 950_000
    assert build_catalog.usd_per_unit_to_pusd(1.5e-12) == 2  # exactly half a pUSD rounds up


def test_negative_price_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        build_catalog.usd_per_unit_to_pusd(-1e-06)


def test_name_tokens_ignore_separators_case_and_meta_prefix() -> None:
    tokens = build_catalog.name_tokens
    assert tokens("claude-haiku-4-5") == tokens("claude-haiku-4.5")
    assert tokens("Meta-Llama-3.1-8B-Instruct") == tokens("llama-3.1-8b-instruct")
    assert tokens("qwen3-14b") != tokens("qwen3.1-4b")


def _fact(key: str, provider: str, **extra: Any) -> dict[str, Any]:
    base = {
        "key": key,
        "provider": provider,
        "mode": "chat",
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
        "max_input_tokens": 128000,
        "max_output_tokens": 4096,
    }
    return base | extra


FACTS = [
    _fact("openrouter/openai/gpt-4o", "openrouter", supports_vision=True, supports_function_calling=True),
    _fact("openrouter/openai/gpt-4o:batch", "openrouter"),
    _fact("openrouter/openrouter/auto", "openrouter"),
    _fact("openrouter/~openai/gpt-latest", "openrouter"),
    _fact("openrouter/anthropic/claude-haiku-4.5", "openrouter", supports_reasoning=True),
    _fact("openrouter/google/gemma-4-31b-it:free", "openrouter", input_cost_per_token=0.0, output_cost_per_token=0.0),
    _fact("openrouter/old/retired-model", "openrouter", deprecation_date="2026-01-01"),
    _fact("gpt-4o", "openai", input_cost_per_token=2.5e-06),
    _fact("gpt-4o-search-preview", "openai"),
    _fact("ft:gpt-4o-2024-08-06", "openai"),
    _fact("claude-haiku-4-5", "anthropic"),
    _fact("fireworks_ai/accounts/fireworks/models/gpt-4o", "fireworks_ai"),
    _fact("groq/some-lab/only-on-groq", "groq"),
    _fact("us.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock_converse", input_cost_per_token=1.1e-06),
    _fact("anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock_converse"),
    _fact("azure/gpt-4o", "azure"),
    _fact("text-embedding-3-small", "openai", mode="embedding"),
]


@pytest.fixture
def built(tmp_path: Path) -> dict[str, dict[str, Any]]:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"about": "test", "models": FACTS}))
    text, _ = build_catalog.build(facts)
    return {model["id"]: model for model in json.loads(text)["models"]}


def test_public_models_are_openrouter_ids_without_routers_batch_or_retired(built: dict[str, Any]) -> None:
    assert "openai/gpt-4o" in built and "anthropic/claude-haiku-4.5" in built
    assert "google/gemma-4-31b-it:free" in built
    assert not any(":batch" in i or i.startswith(("openrouter/", "~")) or i == "old/retired-model" for i in built)


def test_direct_providers_join_the_openrouter_model_they_sell(built: dict[str, Any]) -> None:
    gpt = {e["provider"]: e for e in built["openai/gpt-4o"]["endpoints"]}
    assert set(gpt) == {"openai", "openrouter", "fireworks"}
    assert gpt["openai"]["upstream_id"] == "gpt-4o"
    assert gpt["openai"]["pricing"] == {"prompt": 2_500_000, "completion": 2_000_000}
    assert gpt["fireworks"]["upstream_id"] == "accounts/fireworks/models/gpt-4o"
    haiku = {e["provider"]: e["upstream_id"] for e in built["anthropic/claude-haiku-4.5"]["endpoints"]}
    assert haiku == {
        "openrouter": "anthropic/claude-haiku-4.5",
        "anthropic": "claude-haiku-4-5",
        "amazon-bedrock": "anthropic.claude-haiku-4-5-20251001-v1:0",  # region-neutral id wins over us.
    }


def test_direct_only_models_are_added_for_model_makers_only(built: dict[str, Any]) -> None:
    assert "openai/gpt-4o-search-preview" in built
    assert not any("only-on-groq" in model_id or "ft:" in model_id for model_id in built)
    assert not any("embedding" in model_id for model_id in built)


def test_capability_flags_become_supported_parameters_and_modalities(built: dict[str, Any]) -> None:
    openrouter = next(e for e in built["openai/gpt-4o"]["endpoints"] if e["provider"] == "openrouter")
    assert openrouter["supported_parameters"][-2:] == ["tools", "tool_choice"]
    assert openrouter["input_modalities"] == ["text", "image"]
    assert built["openai/gpt-4o"]["name"] == "OpenAI: GPT-4o"
    assert built["anthropic/claude-haiku-4.5"]["supports_reasoning"] is True


def test_output_is_deterministic_with_one_model_per_line(tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"about": "test", "models": FACTS}))
    first, _ = build_catalog.build(facts)
    facts.write_text(json.dumps({"about": "test", "models": list(reversed(FACTS))}))
    second, _ = build_catalog.build(facts)
    assert json.loads(first)["models"] == json.loads(second)["models"]
    model_lines = [line for line in first.splitlines() if line.startswith('{"context_length"')]
    assert len(model_lines) == len(json.loads(first)["models"])

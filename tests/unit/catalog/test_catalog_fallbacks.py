"""Operator-configured model fallbacks: the graph check (cycles, unknown models) and the expanded chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyroute.catalog.catalog import load_catalog
from polyroute.catalog.config import ConfigError
from polyroute.catalog.fallbacks import FallbackCycle, UnknownFallback, check_and_expand, expand_chain, find_cycle

PROVIDER = '[providers.acme]\ntype = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'


def model(model_id: str, fallbacks: list[str] | None = None) -> str:
    lines = ["[[models]]", f'id = "{model_id}"', f'name = "{model_id}"', "context_length = 100"]
    if fallbacks is not None:
        lines.append("fallbacks = [" + ", ".join(f'"{f}"' for f in fallbacks) + "]")
    lines += ["[[models.endpoints]]", 'provider = "acme"', 'prompt_price = "1"', 'completion_price = "1"']
    return "\n".join(lines) + "\n"


def load(tmp_path: Path, *models: str, extra: str = "") -> dict[str, tuple[str, ...]]:
    path = tmp_path / "polyroute.toml"
    path.write_text(PROVIDER + "".join(models) + extra)
    catalog = load_catalog({}, path, ("openai",))
    return {m.id: m.fallbacks for m in catalog.list_models(include_unavailable=True) if m.fallbacks}


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a/x": ["a/x"]}, ("a/x", "a/x")),
        ({"a/x": ["a/y"], "a/y": ["a/x"]}, ("a/x", "a/y", "a/x")),
        ({"a/w": ["a/x"], "a/x": ["a/y"], "a/y": ["a/z"], "a/z": ["a/x"]}, ("a/x", "a/y", "a/z", "a/x")),
        ({"a/x": ["a/q", "a/y"], "a/q": [], "a/y": ["a/x"]}, ("a/x", "a/y", "a/x")),
    ],
)
def test_find_cycle_returns_the_cycle_path(graph, cycle):
    assert find_cycle(graph) == cycle


def test_a_diamond_is_not_a_cycle():
    graph = {"a/x": ["a/y", "a/z"], "a/y": ["a/w"], "a/z": ["a/w"], "a/w": []}
    assert find_cycle(graph) is None


def test_chains_expand_level_by_level_without_duplicates_or_the_model_itself():
    graph = {"a/x": ["a/y", "a/z", "a/y"], "a/y": ["a/w", "a/z"], "a/z": ["a/v"], "a/w": []}
    assert expand_chain("a/x", graph) == ("a/y", "a/z", "a/w", "a/v")
    assert expand_chain("a/w", graph) == ()


def test_check_and_expand_refuses_unknown_targets_and_cycles():
    with pytest.raises(UnknownFallback) as unknown:
        check_and_expand({"a/x": ["a/nope"]}, {"a/x"})
    assert (unknown.value.model_id, unknown.value.target) == ("a/x", "a/nope")
    with pytest.raises(FallbackCycle, match="a/x → a/y → a/x"):
        check_and_expand({"a/x": ["a/y"], "a/y": ["a/x"]}, {"a/x", "a/y"})


def test_config_fallbacks_become_each_models_expanded_chain(tmp_path: Path):
    chains = load(tmp_path, model("a/x", ["a/y", "a/z"]), model("a/y", ["a/z", "a/w"]), model("a/z"), model("a/w"))
    assert chains == {"a/x": ("a/y", "a/z", "a/w"), "a/y": ("a/z", "a/w")}


def test_a_fallback_may_name_a_builtin_model(tmp_path: Path):
    chains = load(tmp_path, model("a/x", ["openai/gpt-4o"]))
    assert chains == {"a/x": ("openai/gpt-4o",)}


def test_a_cycle_stops_the_load_naming_file_key_and_path(tmp_path: Path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, model("a/x", ["a/y"]), model("a/y", ["a/z"]), model("a/z", ["a/y"]))
    message = str(error.value)
    assert str(tmp_path / "polyroute.toml") in message
    assert error.value.key_path == "models[1].fallbacks"
    assert "a/y → a/z → a/y" in message


def test_a_self_fallback_is_a_cycle(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"models\[0\]\.fallbacks: fallback cycle a/x → a/x"):
        load(tmp_path, model("a/x", ["a/x"]))


def test_a_fallback_to_an_unknown_model_stops_the_load(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"models\[0\]\.fallbacks\[1\]: unknown model 'a/nope'"):
        load(tmp_path, model("a/x", ["a/y", "a/nope"]), model("a/y"))


def test_fallbacks_must_be_a_list_of_strings(tmp_path: Path):
    path = tmp_path / "polyroute.toml"
    path.write_text(PROVIDER + model("a/x").replace("context_length = 100", "context_length = 100\nfallbacks = [1]"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.fallbacks\[0\]: expected a string"):
        load_catalog({}, path, ("openai",))


def test_aliases_cannot_chain_so_an_alias_cycle_cannot_be_written(tmp_path: Path):
    extra = '[aliases]\n"~a/one-latest" = "~a/two-latest"\n"~a/two-latest" = "~a/one-latest"\n'
    with pytest.raises(ConfigError, match=r"aliases\.~a/one-latest: unknown model '~a/two-latest'"):
        load(tmp_path, model("a/x"), extra=extra)

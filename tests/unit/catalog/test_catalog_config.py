"""The operator's TOML config: what it adds and overrides, and errors that name file, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyroute.catalog.catalog import Catalog, load_catalog
from polyroute.catalog.config import ConfigError

ACME = """
[providers.acme]
type = "openai"
base_url = "http://127.0.0.1:18080/v1"
api_key_env = "ACME_API_KEY"
name = "Acme"
headers = { "X-Extra" = "1" }
data_collection = "deny"

[[models]]
id = "acme/mock-model"
name = "Acme: Mock Model"
context_length = 8192
description = "A mock."

[[models.endpoints]]
provider = "acme"
upstream_id = "mock-model"
prompt_price = "0.50"
completion_price = 1.5
max_completion_tokens = 4096
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "polyroute.toml"
    path.write_text(text)
    return path


def load(path: Path, env: dict[str, str] | None = None, dialects: tuple[str, ...] = ("openai", "local")) -> Catalog:
    return load_catalog(env or {}, path, dialects)


def test_a_provider_and_model_from_the_file_are_routable_with_exact_prices(tmp_path: Path) -> None:
    catalog = load(write(tmp_path, ACME), {"ACME_API_KEY": "k-acme"})
    acme = catalog.provider("acme")
    assert (acme.display_name, acme.base_url, acme.data_collection) == ("Acme", "http://127.0.0.1:18080/v1", "deny")
    assert dict(acme.headers) == {"X-Extra": "1"} and acme.available
    model, variant = catalog.resolve("acme/mock-model")
    (endpoint,) = catalog.routable_endpoints(model)
    assert variant is None and model.context_length == 8192 and model.description == "A mock."
    assert endpoint.upstream_id == "mock-model" and endpoint.max_completion_tokens == 4096
    assert (endpoint.pricing.prompt, endpoint.pricing.completion) == (500_000, 1_500_000)
    assert "tools" in endpoint.supported_parameters


def test_an_unset_api_key_env_leaves_the_provider_unavailable_not_an_error(tmp_path: Path) -> None:
    catalog = load(write(tmp_path, ACME))
    assert not catalog.provider("acme").available
    assert not catalog.is_listed(catalog.models["acme/mock-model"])


def test_a_section_named_like_a_preset_overrides_only_what_it_gives(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\nbase_url = "http://127.0.0.1:9999/v1"\n')
    openai = load(path, {"OPENAI_API_KEY": "sk-1"}).provider("openai")
    assert openai.base_url == "http://127.0.0.1:9999/v1"
    assert openai.display_name == "OpenAI" and openai.available


def test_naming_a_local_preset_switches_it_on_at_its_default_url(tmp_path: Path) -> None:
    ollama = load(write(tmp_path, "[providers.ollama]\n")).provider("ollama")
    assert ollama.available and ollama.base_url == "http://127.0.0.1:11434/v1"


def test_a_builtin_model_entry_extends_it_and_replaces_the_same_providers_endpoint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ACME
        + """
[[models]]
id = "openai/gpt-4o"
[[models.endpoints]]
provider = "acme"
prompt_price = "0"
completion_price = "0"
[[models.endpoints]]
provider = "openai"
upstream_id = "gpt-4o-custom"
prompt_price = "1"
completion_price = "2"
""",
    )
    model = load(path).models["openai/gpt-4o"]
    by_provider = {e.provider: e for e in model.endpoints}
    assert by_provider["acme"].upstream_id == "openai/gpt-4o"  # upstream_id defaults to the model id
    assert by_provider["openai"].upstream_id == "gpt-4o-custom"
    assert "openrouter" in by_provider and model.name == "OpenAI: GPT-4o"
    assert model.endpoints[0].provider == "acme"  # cheapest first
    assert len([e for e in model.endpoints if e.provider == "openai"]) == 1


def test_a_local_provider_needs_no_key_and_its_endpoints_may_name_a_weights_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[providers.box]
type = "local"
[[models]]
id = "me/tiny"
name = "Tiny"
context_length = 2048
[[models.endpoints]]
provider = "box"
path = "/models/tiny.gguf"
prompt_price = 0
completion_price = 0
""",
    )
    catalog = load(path)
    (endpoint,) = catalog.routable_endpoints(catalog.models["me/tiny"])
    assert endpoint.model_path == "/models/tiny.gguf" and catalog.provider("box").needs_key is False


def test_a_server_section_and_an_empty_file_are_accepted(tmp_path: Path) -> None:
    assert load(write(tmp_path, "[server]\nport = 8080\n")).models
    assert load(write(tmp_path, "")).models


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def model_with(endpoint_lines: str, provider: str = "acme") -> str:
    return (
        ACME
        + '\n[[models]]\nid = "acme/two"\nname = "Two"\ncontext_length = 10\n'
        + (f'[[models.endpoints]]\nprovider = "{provider}"\n{endpoint_lines}\n')
    )


@pytest.mark.parametrize(
    ("text", "key_path", "reason"),
    [
        ('[providers.x]\ntype = "soap"\nbase_url = "http://h"\n', "providers.x.type", "expected one of"),
        ('[providers.x]\nbase_url = "http://h"\n', "providers.x.type", "missing required key"),
        ('[providers.x]\ntype = "openai"\n', "providers.x.base_url", "missing required key"),
        ('[providers.x]\ntype = "openai"\nbase_url = "ftp://h"\n', "providers.x.base_url", "not a valid"),
        ('[providers.x]\ntype = "openai"\nbase_url = 7\n', "providers.x.base_url", "expected a string, got an integer"),
        (
            '[providers.x]\ntype = "openai"\nbase_url = "http://h"\napi_key = "sk"\n',
            "providers.x.api_key",
            "unknown key",
        ),
        ('[providers.x]\ntype = "openai"\nbase_url = "http://h"\nregion = "eu"\n', "providers.x.region", "bedrock"),
        ('[providers.x]\ntype = "local"\napi_key_env = "K"\n', "providers.x.api_key_env", "takes no key"),
        ('[providers.openai]\ndata_collection = "maybe"\n', "providers.openai.data_collection", "expected one of"),
        ("[providers.openai]\nheaders = { A = 1 }\n", "providers.openai.headers.A", "expected a string"),
        ("[providers.Bad]\n", "providers.Bad", "provider slug"),
        ("[limits]\n", "limits", "unknown key"),
        ('models = "x"\n', "models", "expected an array"),
        ('[[models]]\nname = "n"\n', "models[0].id", "missing required key"),
        ('[[models]]\nid = "no-slash"\n', "models[0].id", "not a valid id"),
        ('[[models]]\nid = "a/b"\ncontext_length = 5\n', "models[0].name", "missing required key"),
        ('[[models]]\nid = "a/b"\nname = "n"\ncontext_length = 0\n', "models[0].context_length", "at least 1"),
        ('[[models]]\nid = "a/b"\nname = "n"\ncontext_length = 5\n', "models[0].endpoints", "at least one"),
        (model_with('prompt_price = "-1"\ncompletion_price = "1"'), "models[1].endpoints[0].prompt_price", "negative"),
        (
            model_with('prompt_price = "0.0000001"\ncompletion_price = "1"'),
            "models[1].endpoints[0].prompt_price",
            "finer than 1 pUSD",
        ),
        (
            model_with('prompt_price = "abc"\ncompletion_price = "1"'),
            "models[1].endpoints[0].prompt_price",
            "bad price",
        ),
        (
            model_with('prompt_price = true\ncompletion_price = "1"'),
            "models[1].endpoints[0].prompt_price",
            "expected a price",
        ),
        (model_with('prompt_price = "1"'), "models[1].endpoints[0].completion_price", "missing required key"),
        (
            model_with('prompt_price = "1"\ncompletion_price = "1"', provider="nope"),
            "models[1].endpoints[0].provider",
            "unknown provider 'nope'",
        ),
        (
            model_with('prompt_price = "1"\ncompletion_price = "1"\npath = "/x.gguf"'),
            "models[1].endpoints[0].path",
            "local",
        ),
        (
            model_with('prompt_price = "1"\ncompletion_price = "1"\nmax_completion_tokens = "9"'),
            "models[1].endpoints[0].max_completion_tokens",
            "expected an integer",
        ),
        (
            model_with('prompt_price = "1"\ncompletion_price = "1"\ninput_modalities = ["smell"]'),
            "models[1].endpoints[0].input_modalities[0]",
            "expected one of",
        ),
        (ACME + '[[models]]\nid = "acme/mock-model"\n', "models[1].id", "duplicate model id 'acme/mock-model'"),
        ("[providers\n", "", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_file_the_key_path_and_the_reason(
    tmp_path: Path, text: str, key_path: str, reason: str
) -> None:
    message = error_for(tmp_path, text)
    assert f": {key_path}: " in message if key_path else True, message
    assert reason in message, message


def test_two_endpoints_of_one_provider_in_one_model_are_refused(tmp_path: Path) -> None:
    twice = model_with('prompt_price = "1"\ncompletion_price = "1"') + (
        '[[models.endpoints]]\nprovider = "acme"\nprompt_price = "1"\ncompletion_price = "1"\n'
    )
    assert "models[1].endpoints[1].provider: provider 'acme' already has an endpoint" in error_for(tmp_path, twice)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "absent.toml")


def test_config_errors_do_not_echo_header_values(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[providers.openai]\nheaders = { Authorization = ["Bearer sk-leak"] }\n')
    assert "sk-leak" not in message


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = error_for(tmp_path, '[providers.openai]\napi_key_env = "sk-proj-leak123"\n')
    assert "providers.openai.api_key_env: must be the NAME of an environment variable" in message
    assert "leak123" not in message


def test_an_api_key_env_override_reads_the_new_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\napi_key_env = "MY_OPENAI_KEY"\n')
    openai = load(path, {"MY_OPENAI_KEY": "sk-mine"}).provider("openai")
    assert openai.available and openai.api_key_env == "MY_OPENAI_KEY"
    assert "sk-mine" not in repr(openai)


def test_a_bedrock_region_in_the_file_moves_the_base_url(tmp_path: Path) -> None:
    bedrock = load(write(tmp_path, '[providers.amazon-bedrock]\nregion = "eu-central-1"\n')).provider("amazon-bedrock")
    assert bedrock.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert bedrock.options["region"] == "eu-central-1"

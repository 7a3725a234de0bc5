"""Built-in provider presets: which environment variables switch them on, and secrets never print."""

from __future__ import annotations

from polyroute.catalog.presets import preset_providers, split_bedrock_credentials
from polyroute.domain.secret import Secret


def test_keyed_presets_are_unavailable_without_their_key() -> None:
    providers = preset_providers({})
    assert providers["openai"].available is False
    assert providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert providers["openrouter"].base_url == "https://openrouter.ai/api/v1"


def test_setting_the_key_variable_makes_a_preset_available_with_the_key_as_secret() -> None:
    providers = preset_providers({"GROQ_API_KEY": "gsk-123"})
    groq = providers["groq"]
    assert groq.available and groq.api_key == Secret("gsk-123")
    assert groq.base_url == "https://api.groq.com/openai/v1"
    assert groq.dialect == "openai" and groq.display_name == "Groq"


def test_an_empty_key_variable_counts_as_unset() -> None:
    assert preset_providers({"OPENAI_API_KEY": ""})["openai"].available is False


def test_base_url_variable_overrides_a_keyed_preset() -> None:
    providers = preset_providers({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "GOOGLE_AI_STUDIO_BASE_URL": "http://g"})
    assert providers["openai"].base_url == "http://127.0.0.1:9/v1"
    assert providers["google-ai-studio"].base_url == "http://g"


def test_google_accepts_gemini_or_google_api_key() -> None:
    assert preset_providers({"GOOGLE_API_KEY": "g"})["google-ai-studio"].api_key_env == "GOOGLE_API_KEY"
    both = preset_providers({"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m"})["google-ai-studio"]
    assert both.api_key == Secret("m") and both.dialect == "gemini"


def test_local_hosts_switch_on_with_their_base_url_and_need_no_key() -> None:
    off = preset_providers({})
    assert not off["ollama"].available and off["ollama"].base_url == "http://127.0.0.1:11434/v1"
    on = preset_providers({"OLLAMA_BASE_URL": "http://box:11434/v1", "LMSTUDIO_BASE_URL": "http://127.0.0.1:1234/v1"})
    assert on["ollama"].available and on["ollama"].base_url == "http://box:11434/v1"
    assert on["ollama"].needs_key is False and on["ollama"].api_key is None
    assert on["lmstudio"].display_name == "LM Studio" and not on["vllm"].available


def test_bedrock_needs_both_aws_keys_and_takes_its_region_from_aws_region() -> None:
    assert not preset_providers({"AWS_ACCESS_KEY_ID": "AKIA1"})["amazon-bedrock"].available
    env = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_REGION": "eu-west-1"}
    bedrock = preset_providers(env)["amazon-bedrock"]
    assert bedrock.available and bedrock.dialect == "bedrock"
    assert bedrock.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert bedrock.options == {"region": "eu-west-1"}
    assert bedrock.api_key is not None
    assert split_bedrock_credentials(bedrock.api_key) == ("AKIA1", "s3cr3t", None)


def test_bedrock_region_defaults_to_us_east_1() -> None:
    bedrock = preset_providers({})["amazon-bedrock"]
    assert bedrock.base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"


def test_key_values_never_appear_in_repr_or_str() -> None:
    env = {
        "OPENAI_API_KEY": "sk-very-secret-1",
        "ANTHROPIC_API_KEY": "sk-ant-very-secret-2",
        "AWS_ACCESS_KEY_ID": "AKIAVERYSECRET3",
        "AWS_SECRET_ACCESS_KEY": "very-secret-4",
    }
    text = repr(preset_providers(env)) + str(preset_providers(env))
    for value in env.values():
        assert value not in text

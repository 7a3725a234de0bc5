"""Built-in provider presets: the hosts polyroute knows, switched on by their environment variables.

A keyed preset is available when its key variable is set; `<SLUG>_BASE_URL` (dashes as underscores)
overrides its base URL. A keyless local host is switched on by setting its base-URL variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from polyroute.catalog.types import ProviderSpec
from polyroute.domain.secret import Secret

BEDROCK_SLUG = "amazon-bedrock"
BEDROCK_DEFAULT_REGION = "us-east-1"
BEDROCK_URL_TEMPLATE = "https://bedrock-runtime.{region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Preset:
    slug: str
    display_name: str
    base_url: str
    key_envs: tuple[str, ...] = ()  # the first one set wins; empty for keyless local hosts
    dialect: str = "openai"


KEYED_PRESETS: tuple[Preset, ...] = (
    Preset("openai", "OpenAI", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    Preset("groq", "Groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    Preset("together", "Together", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",)),
    Preset("fireworks", "Fireworks", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",)),
    Preset("deepseek", "DeepSeek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",)),
    Preset("mistral", "Mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
    Preset("xai", "xAI", "https://api.x.ai/v1", ("XAI_API_KEY",)),
    Preset("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    Preset("deepinfra", "DeepInfra", "https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",)),
    Preset("cerebras", "Cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
    Preset("perplexity", "Perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY",)),
    Preset("novita", "NovitaAI", "https://api.novita.ai/v3/openai", ("NOVITA_API_KEY",)),
    Preset("nebius", "Nebius", "https://api.studio.nebius.com/v1", ("NEBIUS_API_KEY",)),
    Preset("anthropic", "Anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",), "anthropic"),
    Preset(
        "google-ai-studio",
        "Google AI Studio",
        "https://generativelanguage.googleapis.com",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        "gemini",
    ),
)

# Keyless OpenAI-compatible servers on the operator's own machines; the URL is the default when a
# config file switches one on without giving `base_url`.
LOCAL_PRESETS: tuple[Preset, ...] = (
    Preset("ollama", "Ollama", "http://127.0.0.1:11434/v1"),
    Preset("vllm", "vLLM", "http://127.0.0.1:8000/v1"),
    Preset("llamacpp", "llama.cpp", "http://127.0.0.1:8080/v1"),
    Preset("lmstudio", "LM Studio", "http://127.0.0.1:1234/v1"),
)


def base_url_env(slug: str) -> str:
    """The variable that overrides (keyed) or switches on (local) a preset: `OPENAI_BASE_URL`."""
    return slug.upper().replace("-", "_").replace(".", "_") + "_BASE_URL"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None  # an empty variable counts as unset


def _keyed(preset: Preset, env: Mapping[str, str]) -> ProviderSpec:
    key_env = next((name for name in preset.key_envs if _get(env, name)), preset.key_envs[0])
    key = _get(env, key_env)
    return ProviderSpec(
        slug=preset.slug,
        display_name=preset.display_name,
        dialect=preset.dialect,
        base_url=_get(env, base_url_env(preset.slug)) or preset.base_url,
        api_key_env=key_env,
        api_key=Secret(key) if key else None,
    )


def _local(preset: Preset, env: Mapping[str, str]) -> ProviderSpec:
    url = _get(env, base_url_env(preset.slug))
    return ProviderSpec(
        slug=preset.slug,
        display_name=preset.display_name,
        dialect=preset.dialect,
        base_url=url or preset.base_url,
        needs_key=False,
        enabled=url is not None,
    )


def bedrock_credentials(env: Mapping[str, str]) -> Secret | None:
    """AWS keys as one Secret `"<access key id>:<secret key>[:<session token>]"`; None unless both keys are set."""
    key_id, secret = _get(env, "AWS_ACCESS_KEY_ID"), _get(env, "AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        return None
    token = _get(env, "AWS_SESSION_TOKEN")
    return Secret(":".join(part for part in (key_id, secret, token) if part))


def split_bedrock_credentials(api_key: Secret) -> tuple[str, str, str | None]:
    """(access key id, secret access key, session token or None) from `bedrock_credentials`' Secret."""
    key_id, secret, *token = api_key.reveal().split(":", 2)
    return key_id, secret, token[0] if token else None


def bedrock_url(region: str) -> str:
    return BEDROCK_URL_TEMPLATE.format(region=region)


def _bedrock(env: Mapping[str, str]) -> ProviderSpec:
    region = _get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION") or BEDROCK_DEFAULT_REGION
    return ProviderSpec(
        slug=BEDROCK_SLUG,
        display_name="Amazon Bedrock",
        dialect="bedrock",
        base_url=_get(env, base_url_env(BEDROCK_SLUG)) or bedrock_url(region),
        api_key_env="AWS_SECRET_ACCESS_KEY",
        api_key=bedrock_credentials(env),
        options={"region": region},
    )


def preset_providers(env: Mapping[str, str]) -> dict[str, ProviderSpec]:
    """Every preset by slug, available or not, so endpoints may name any of them."""
    providers = {preset.slug: _keyed(preset, env) for preset in KEYED_PRESETS}
    providers.update({preset.slug: _local(preset, env) for preset in LOCAL_PRESETS})
    providers[BEDROCK_SLUG] = _bedrock(env)
    return providers


PRESET_SLUGS = frozenset([preset.slug for preset in (*KEYED_PRESETS, *LOCAL_PRESETS)] + [BEDROCK_SLUG])
LOCAL_SLUGS = frozenset(preset.slug for preset in LOCAL_PRESETS)

"""Catalog value types. Prices are integer pUSD per unit (see polyroute.domain.money)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from polyroute.domain.secret import Secret

DIALECTS = ("openai", "anthropic", "gemini", "bedrock", "local")


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One upstream host. `api_key` is resolved from `api_key_env` at load time."""

    slug: str  # routable provider slug, e.g. "openai", "groq", "acme"
    display_name: str  # e.g. "OpenAI", shown as `provider` in responses
    dialect: str  # one of DIALECTS
    base_url: str
    api_key_env: str | None = None  # the env var's name, never the secret
    api_key: Secret | None = None
    needs_key: bool = True  # False for local hosts (ollama, vllm, llama.cpp server, local)
    headers: Mapping[str, str] = field(default_factory=dict)
    data_collection: str = "allow"  # "allow" | "deny": whether the provider may retain prompts
    options: Mapping[str, str] = field(default_factory=dict)  # dialect-specific extras
    enabled: bool = True  # False for a keyless local preset whose base-URL variable is not set

    @property
    def available(self) -> bool:
        """Routable now: switched on, and it has its key or needs none."""
        return self.enabled and (not self.needs_key or bool(self.api_key))


@dataclass(frozen=True, slots=True)
class Pricing:
    """pUSD per token (prompt, completion, cache), per request, per image."""

    prompt: int
    completion: int
    request: int = 0
    image: int = 0
    input_cache_read: int | None = None
    input_cache_write: int | None = None
    internal_reasoning: int | None = None

    @property
    def is_free(self) -> bool:
        return self.prompt == 0 and self.completion == 0 and self.request == 0 and self.image == 0


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One provider serving one model."""

    model_id: str  # public id, e.g. "openai/gpt-4o"
    provider: str  # ProviderSpec.slug
    upstream_id: str  # the id the provider knows it by
    pricing: Pricing
    context_length: int
    max_completion_tokens: int | None = None
    supported_parameters: tuple[str, ...] = ()
    quantization: str | None = None
    input_modalities: tuple[str, ...] = ("text",)
    is_moderated: bool = False
    model_path: str | None = None  # weights file for the in-process "local" dialect (e.g. a GGUF)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A public model: what `/models` lists; its endpoints are ordered cheapest first."""

    id: str  # "author/slug"
    name: str  # "OpenAI: GPT-4o"
    canonical_slug: str
    created: int  # unix seconds
    description: str
    context_length: int
    endpoints: tuple[EndpointSpec, ...]
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    tokenizer: str = "Other"
    instruct_type: str | None = None
    hugging_face_id: str | None = None
    supports_reasoning: bool = False
    fallbacks: tuple[str, ...] = ()  # operator-configured, already expanded (catalog/fallbacks.py)

"""The operator's TOML config: extra providers, preset overrides and models, checked in full at load.

Applied over the built-ins: a `[providers.<slug>]` section named like a preset overrides only the fields
it gives. A `[[models]]` entry whose id is a built-in model EXTENDS it: the built-in endpoints stay, an
endpoint naming a provider that already serves the model replaces that endpoint (one endpoint per
provider and model), and the fields given (name, context_length, ...) override the built-in ones.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polyroute.catalog.config_fields import ConfigError, Fields
from polyroute.catalog.fallbacks import FallbackCycle, UnknownFallback, check_and_expand
from polyroute.catalog.presets import BEDROCK_DEFAULT_REGION, bedrock_credentials, bedrock_url
from polyroute.catalog.types import DIALECTS, EndpointSpec, ModelSpec, Pricing, ProviderSpec
from polyroute.domain.money import per_million_to_pusd_per_token, usd_to_pusd
from polyroute.domain.secret import Secret

__all__ = ["ConfigError", "OperatorConfig", "load_config"]

TOP_LEVEL_KEYS = frozenset({"providers", "models", "aliases", "server"})  # [server] is read by the settings, not here
# fmt: off
PROVIDER_KEYS = frozenset({"type", "base_url", "api_key_env", "name", "headers", "data_collection", "region",
                           "options"})
MODEL_KEYS = frozenset({"id", "name", "context_length", "description", "input_modalities", "supported_parameters",
                        "tokenizer", "hugging_face_id", "endpoints", "fallbacks"})
# Prices: `*_price` per million tokens, except request_price (USD per request) and image_price (per image).
ENDPOINT_KEYS = frozenset({"provider", "upstream_id", "context_length", "max_completion_tokens", "supported_parameters",
                           "quantization", "input_modalities", "path", "prompt_price", "completion_price",
                           "input_cache_read_price", "input_cache_write_price", "internal_reasoning_price",
                           "request_price", "image_price"})
# What a model or endpoint offers when the file does not say: the common sampling knobs plus tools.
DEFAULT_PARAMETERS = ("max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty",
                      "tools", "tool_choice")
# fmt: on
MODALITIES = frozenset({"text", "image", "file", "audio", "video"})
SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")  # upper case by convention; catches keys pasted here
MODEL_ID = re.compile(r"[A-Za-z0-9][\w.~-]*/[\w.:-]+")
URL = re.compile(r"https?://[^\s/]+\S*")


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """The file's providers (presets already overridden) and models (built-ins already extended)."""

    providers: dict[str, ProviderSpec]
    models: dict[str, ModelSpec]
    aliases: dict[str, str]


def load_config(
    path: Path,
    env: Mapping[str, str],
    *,
    presets: Mapping[str, ProviderSpec],
    builtin_models: Mapping[str, ModelSpec],
) -> OperatorConfig:
    """Parse and check the whole file; raises ConfigError naming file, key path and reason."""
    top = Fields(path, "", _read(path), TOP_LEVEL_KEYS)
    providers = _providers(top, env, presets)
    known = {**presets, **providers}
    created_s = int(path.stat().st_mtime)  # config models appear as "added when the file last changed"
    models: dict[str, ModelSpec] = {}
    first_index: dict[str, int] = {}
    graph: dict[str, tuple[str, ...]] = {}  # model id -> its own `fallbacks`, in file order
    for i, table in enumerate(top.tables("models")):
        fields = Fields(path, f"models[{i}]", table, MODEL_KEYS)
        model_id = fields.required_string("id", pattern=MODEL_ID)
        if model_id in first_index:
            raise fields.error("id", f"duplicate model id {model_id!r} (first at models[{first_index[model_id]}])")
        first_index[model_id] = i
        models[model_id] = _model(fields, model_id, builtin_models.get(model_id), known, created_s)
        if (fallbacks := fields.string_list("fallbacks")) is not None:
            graph[model_id] = fallbacks
    all_models = {**builtin_models, **models}
    for model_id, chain in _fallback_chains(path, graph, first_index, all_models).items():
        models[model_id] = dataclasses.replace(models[model_id], fallbacks=chain)
    aliases = _aliases(top, all_models)
    return OperatorConfig(providers, models, aliases)


def _fallback_chains(
    file: Path, graph: dict[str, tuple[str, ...]], index: Mapping[str, int], known: Mapping[str, ModelSpec]
) -> dict[str, tuple[str, ...]]:
    """Each model's expanded fallback chain; an unknown target or a cycle stops the start."""
    try:
        return check_and_expand(graph, known)
    except UnknownFallback as exc:
        position = graph[exc.model_id].index(exc.target)
        key = f"models[{index[exc.model_id]}].fallbacks[{position}]"
        raise ConfigError(file, key, f"unknown model {exc.target!r}") from None
    except FallbackCycle as exc:
        key = f"models[{index[exc.path[0]]}].fallbacks"
        raise ConfigError(file, key, f"fallback cycle {' → '.join(exc.path)}") from None


def _aliases(top: Fields, models: Mapping[str, ModelSpec]) -> dict[str, str]:
    """`[aliases]`: "~author/name-latest" = "author/model-id" (the target must be a known model)."""
    table = top.table_of("aliases") or {}
    out: dict[str, str] = {}
    for alias, target in table.items():
        key = f"aliases.{alias}"
        if not alias.startswith("~") or "/" not in alias:
            raise ConfigError(top.file, key, 'an alias looks like "~author/name-latest"')
        if not isinstance(target, str):
            raise ConfigError(top.file, key, f"expected a model id string, got {type(target).__name__}")
        if target not in models:
            raise ConfigError(top.file, key, f"unknown model {target!r}")
        out[alias] = target
    return out


def _read(path: Path) -> object:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def _providers(top: Fields, env: Mapping[str, str], presets: Mapping[str, ProviderSpec]) -> dict[str, ProviderSpec]:
    out: dict[str, ProviderSpec] = {}
    for slug, table in (top.table_of("providers") or {}).items():
        path = f"providers.{slug}"
        if not SLUG.fullmatch(slug):
            raise ConfigError(top.file, path, "a provider slug is lowercase letters, digits, '.', '_' and '-'")
        fields = Fields(top.file, path, table, PROVIDER_KEYS)
        preset = presets.get(slug)
        out[slug] = _override(fields, preset, env) if preset else _new_provider(fields, slug, env)
    return out


@dataclass(frozen=True, slots=True)
class _Given:
    """Provider fields that mean the same for a new provider and a preset override; None = not given."""

    display_name: str | None
    headers: dict[str, str] | None
    data_collection: str | None
    options: dict[str, str]

    @classmethod
    def read(cls, fields: Fields, dialect: str) -> _Given:
        options = fields.string_map("options") or {}
        if (region := fields.string("region")) is not None:
            if dialect != "bedrock":
                raise fields.error("region", 'applies to type = "bedrock" providers only')
            options["region"] = region
        return cls(
            fields.string("name"),
            fields.string_map("headers"),
            fields.string("data_collection", choices=("allow", "deny")),
            options,
        )

    def apply(self, spec: ProviderSpec) -> ProviderSpec:
        return dataclasses.replace(
            spec,
            display_name=self.display_name or spec.display_name,
            headers=spec.headers if self.headers is None else self.headers,
            data_collection=self.data_collection or spec.data_collection,
            options={**spec.options, **self.options},
        )


def _key(fields: Fields, env: Mapping[str, str], dialect: str) -> tuple[str | None, Secret | None]:
    """(api_key_env, its value as a Secret); an unset variable leaves the provider unavailable."""
    key_env = fields.string("api_key_env")
    if key_env is not None and not ENV_NAME.fullmatch(key_env):
        # Never echo the value: a wrong one is most often the key itself, pasted in by mistake.
        raise fields.error("api_key_env", "must be the NAME of an environment variable (A-Z, 0-9, _), not a key")
    if key_env is not None and dialect in ("local", "bedrock"):
        reason = "takes no key" if dialect == "local" else "reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        raise fields.error("api_key_env", f'a type = "{dialect}" provider {reason}')
    value = env.get(key_env) if key_env else None
    return key_env, Secret(value) if value else None


def _new_provider(fields: Fields, slug: str, env: Mapping[str, str]) -> ProviderSpec:
    dialect = fields.required_string("type", choices=DIALECTS)
    base_url = fields.string("base_url", required=dialect not in ("local", "bedrock"), pattern=URL)
    key_env, api_key = _key(fields, env, dialect)
    given = _Given.read(fields, dialect)
    if dialect == "bedrock":
        region = given.options.setdefault("region", BEDROCK_DEFAULT_REGION)
        spec = ProviderSpec(
            slug=slug,
            display_name=slug,
            dialect=dialect,
            base_url=base_url or bedrock_url(region),
            api_key_env="AWS_SECRET_ACCESS_KEY",
            api_key=bedrock_credentials(env),
        )
    else:  # without api_key_env the host is keyless (a vLLM or llama.cpp server of the operator's own)
        spec = ProviderSpec(
            slug=slug,
            display_name=slug,
            dialect=dialect,
            base_url=base_url or "",
            api_key_env=key_env,
            api_key=api_key,
            needs_key=key_env is not None,
        )
    return given.apply(spec)


def _override(fields: Fields, preset: ProviderSpec, env: Mapping[str, str]) -> ProviderSpec:
    dialect = fields.string("type", choices=DIALECTS) or preset.dialect
    given = _Given.read(fields, dialect)
    base_url = fields.string("base_url", pattern=URL)
    if base_url is None and "region" in given.options:
        base_url = bedrock_url(given.options["region"])
    key_env, api_key = _key(fields, env, dialect) if fields.has("api_key_env") else (preset.api_key_env, preset.api_key)
    spec = dataclasses.replace(
        preset,
        dialect=dialect,
        base_url=base_url or preset.base_url,
        api_key_env=key_env,
        api_key=api_key,
        enabled=True,  # naming a local preset in the file switches it on
    )
    return given.apply(spec)


@dataclass(frozen=True, slots=True)
class _EndpointDefaults:
    context_length: int
    supported_parameters: tuple[str, ...]
    input_modalities: tuple[str, ...]


def _model(
    fields: Fields, model_id: str, builtin: ModelSpec | None, providers: Mapping[str, ProviderSpec], created_s: int
) -> ModelSpec:
    name = fields.string("name", required=builtin is None)
    context = fields.integer("context_length", required=builtin is None)
    modalities = fields.string_list("input_modalities", choices=MODALITIES)
    params = fields.string_list("supported_parameters")
    defaults = _EndpointDefaults(
        context_length=context or (builtin.context_length if builtin else 0),
        supported_parameters=params or DEFAULT_PARAMETERS,
        input_modalities=modalities or (builtin.input_modalities if builtin else ("text",)),
    )
    tables = fields.tables("endpoints")
    if builtin is None and not tables:
        raise fields.error("endpoints", "a new model needs at least one [[models.endpoints]]")
    own: list[EndpointSpec] = []
    for j, table in enumerate(tables):
        ep_fields = Fields(fields.file, f"{fields.path}.endpoints[{j}]", table, ENDPOINT_KEYS)
        endpoint = _endpoint(ep_fields, model_id, providers, defaults)
        if any(e.provider == endpoint.provider for e in own):
            raise ep_fields.error("provider", f"provider {endpoint.provider!r} already has an endpoint for this model")
        own.append(endpoint)
    replaced = {e.provider for e in own}
    kept = tuple(e for e in builtin.endpoints if e.provider not in replaced) if builtin else ()
    base = builtin or ModelSpec(
        id=model_id,
        name="",
        canonical_slug=model_id,
        created=created_s,
        description="",
        context_length=defaults.context_length,
        endpoints=(),
    )
    return dataclasses.replace(
        base,
        name=name or base.name,
        description=fields.string("description") or base.description,
        context_length=defaults.context_length,
        endpoints=kept + tuple(own),
        input_modalities=defaults.input_modalities,
        tokenizer=fields.string("tokenizer") or base.tokenizer,
        hugging_face_id=fields.string("hugging_face_id") or base.hugging_face_id,
        supports_reasoning=base.supports_reasoning or "reasoning" in (params or ()),
    )


def _endpoint(
    fields: Fields, model_id: str, providers: Mapping[str, ProviderSpec], defaults: _EndpointDefaults
) -> EndpointSpec:
    slug = fields.required_string("provider")
    provider = providers.get(slug)
    if provider is None:
        raise fields.error("provider", f"unknown provider {slug!r}: add a [providers.{slug}] section or use a preset")
    per_token = per_million_to_pusd_per_token
    pricing = Pricing(
        prompt=fields.required_price("prompt_price", per_token),
        completion=fields.required_price("completion_price", per_token),
        request=fields.price("request_price", usd_to_pusd) or 0,
        image=fields.price("image_price", usd_to_pusd) or 0,
        input_cache_read=fields.price("input_cache_read_price", per_token),
        input_cache_write=fields.price("input_cache_write_price", per_token),
        internal_reasoning=fields.price("internal_reasoning_price", per_token),
    )
    model_path = fields.string("path")
    if model_path is not None and provider.dialect != "local":
        raise fields.error(
            "path", f'only endpoints of a type = "local" provider take a path ({slug!r} is "{provider.dialect}")'
        )
    return EndpointSpec(
        model_id=model_id,
        provider=slug,
        upstream_id=fields.string("upstream_id") or model_id,
        pricing=pricing,
        context_length=fields.integer("context_length") or defaults.context_length,
        max_completion_tokens=fields.integer("max_completion_tokens"),
        supported_parameters=fields.string_list("supported_parameters") or defaults.supported_parameters,
        quantization=fields.string("quantization"),
        input_modalities=fields.string_list("input_modalities", choices=MODALITIES) or defaults.input_modalities,
        model_path=model_path,
    )

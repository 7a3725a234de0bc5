"""`~author/family-latest` aliases: each resolves to the newest model of its family.

"Newest" is the highest version number in the id (gpt-5.1 > gpt-5 > gpt-4.1), preferring
models that are routable now. The operator's `[aliases]` table overrides or adds aliases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from polyroute.catalog.types import ModelSpec

_VERSION = r"(\d+(?:\.\d+)*)"
# alias -> pattern over public model ids; group 1 is the version.
FAMILIES: dict[str, str] = {
    "~openai/gpt-latest": rf"openai/gpt-{_VERSION}",
    "~openai/gpt-mini-latest": rf"openai/gpt-{_VERSION}-mini",
    "~anthropic/claude-opus-latest": rf"anthropic/claude-opus-{_VERSION}",
    "~anthropic/claude-sonnet-latest": rf"anthropic/claude-sonnet-{_VERSION}",
    "~anthropic/claude-haiku-latest": rf"anthropic/claude-haiku-{_VERSION}",
    "~google/gemini-pro-latest": rf"google/gemini-{_VERSION}-pro",
    "~google/gemini-flash-latest": rf"google/gemini-{_VERSION}-flash",
    "~x-ai/grok-latest": rf"x-ai/grok-{_VERSION}",
    "~deepseek/deepseek-latest": rf"deepseek/deepseek-v{_VERSION}",
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def newest_in_family(pattern: str, model_ids: list[str]) -> str | None:
    compiled = re.compile(pattern)
    best: tuple[tuple[int, ...], str] | None = None
    for model_id in model_ids:
        match = compiled.fullmatch(model_id)
        if match and (best is None or _version(match.group(1)) > best[0]):
            best = (_version(match.group(1)), model_id)
    return best[1] if best else None


def resolve_aliases(
    models: Mapping[str, ModelSpec], is_listed: Callable[[ModelSpec], bool], overrides: Mapping[str, str]
) -> dict[str, str]:
    """alias -> model id. Routable family members win over unroutable ones."""
    listed = [model_id for model_id, model in models.items() if is_listed(model)]
    everything = list(models)
    aliases: dict[str, str] = {}
    for alias, pattern in FAMILIES.items():
        target = newest_in_family(pattern, listed) or newest_in_family(pattern, everything)
        if target is not None:
            aliases[alias] = target
    aliases.update(overrides)
    return aliases

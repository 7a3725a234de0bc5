"""Build src/polyroute/catalog/data/catalog.json from the public model-facts.json price table.

OpenRouter's own ids give the public model list; direct providers that sell the same model add
endpoints. Output is deterministic (no clock, sorted) with one model per line so diffs stay small.
Usage: python scripts/build_catalog.py [path/to/model-facts.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FACTS = REPO_ROOT / ".." / "shared" / "reference" / "model-facts.json"
OUTPUT = REPO_ROOT / "src" / "polyroute" / "catalog" / "data" / "catalog.json"

PUSD_PER_USD = 10**12  # same constant as polyroute.domain.money; the script runs without the package
SNAPSHOT_DATE = "2026-11-22"  # entries deprecated before this day are left out
CREATED_S = 1795305600  # 2026-11-22T00:00:00Z: every built-in model's `created`, fixed so output is stable
FALLBACK_CONTEXT_TOKENS = 8192

BASE_PARAMETERS = ("max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")
PUBLIC_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(:free)?$")
ROUTER_AUTHORS = {"openrouter"}  # openrouter/auto, /free, /bodybuilder pick a model, they are not one
# fmt: off
# Direct-only ids that are not plain chat completions (speech, music, embeddings, agents) or moving aliases.
NOT_CHAT_WORDS = ("tts", "lyria", "realtime", "embed", "computer-use", "robotics", "audio", "search-api",
                  "deep-research", "container", "latest", "ocr")
# facts `provider` -> (our provider slug, OpenRouter author for unprefixed ids, key prefix to strip)
DIRECT: dict[str, tuple[str, str | None, str]] = {
    "openai": ("openai", "openai", ""), "anthropic": ("anthropic", "anthropic", ""),
    "gemini": ("google-ai-studio", "google", "gemini/"), "groq": ("groq", None, "groq/"),
    "together_ai": ("together", None, "together_ai/"), "fireworks_ai": ("fireworks", None, "fireworks_ai/"),
    "deepinfra": ("deepinfra", None, "deepinfra/"), "novita": ("novita", None, "novita/"),
    "nebius": ("nebius", None, "nebius/"), "cerebras": ("cerebras", None, "cerebras/"),
    "mistral": ("mistral", "mistralai", "mistral/"), "deepseek": ("deepseek", "deepseek", "deepseek/"),
    "xai": ("xai", "x-ai", "xai/"), "perplexity": ("perplexity", "perplexity", "perplexity/"),
    "bedrock_converse": ("amazon-bedrock", None, ""),
}
# Providers whose models we may list even when OpenRouter does not (their author is certain).
DIRECT_ONLY_OK = {"openai", "anthropic", "google-ai-studio", "mistral", "deepseek", "xai"}
# Hugging Face org / Bedrock vendor -> OpenRouter author.
AUTHOR_ALIASES = {
    "deepseek-ai": "deepseek", "zai-org": "z-ai", "zai": "z-ai", "minimaxai": "minimax", "moonshot": "moonshotai",
    "xiaomimimo": "xiaomi", "bytedance": "bytedance-seed", "stepfun-ai": "stepfun", "meta-models": "meta",
    "xai": "x-ai", "mistral": "mistralai", "meta": "meta-llama",
}
BEDROCK_GEOS = {"us", "global", "eu", "apac", "jp", "au", "us-gov"}
BEDROCK_GEO_RANK = {"": 0, "global": 1, "us": 2}  # region-neutral id first; other geos are region-bound
AUTHOR_NAMES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "meta-llama": "Meta", "meta": "Meta",
    "mistralai": "Mistral", "deepseek": "DeepSeek", "x-ai": "xAI", "qwen": "Qwen", "moonshotai": "MoonshotAI",
    "z-ai": "Z.ai", "minimax": "MiniMax", "nvidia": "NVIDIA", "amazon": "Amazon", "cohere": "Cohere",
    "microsoft": "Microsoft", "perplexity": "Perplexity", "nousresearch": "Nous", "bytedance-seed": "ByteDance Seed",
    "ibm-granite": "IBM", "xiaomi": "Xiaomi", "tencent": "Tencent", "baidu": "Baidu", "stepfun": "StepFun",
    "inclusionai": "inclusionAI", "thinkingmachines": "Thinking Machines", "ai21": "AI21", "liquid": "Liquid",
}
TOKENIZERS = {"openai": "GPT", "anthropic": "Claude", "google": "Gemini", "meta-llama": "Llama3",
              "mistralai": "Mistral", "qwen": "Qwen", "deepseek": "DeepSeek", "x-ai": "Grok"}
WORD_SPELLINGS = {"gpt": "GPT", "glm": "GLM", "oss": "OSS", "vl": "VL", "it": "IT", "r1": "R1", "mt": "MT",
                  "deepseek": "DeepSeek", "minimax": "MiniMax", "qwq": "QwQ", "hf": "HF"}
# fmt: on


def usd_per_unit_to_pusd(value: float | int) -> int:
    """USD float from the facts file -> whole pUSD, exactly as written (`repr` is the shortest round-trip)."""
    exact = Decimal(repr(value)) * PUSD_PER_USD
    if exact < 0:
        raise ValueError(f"negative price {value!r}")
    # Binary noise such as 8.900000000000001e-07 lands below 1 pUSD: round half-up to the whole pUSD.
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def pricing(fact: dict[str, Any]) -> dict[str, int]:
    fields = {
        "prompt": "input_cost_per_token",
        "completion": "output_cost_per_token",
        "input_cache_read": "cache_read_input_token_cost",
        "input_cache_write": "cache_creation_input_token_cost",
        "internal_reasoning": "output_cost_per_reasoning_token",
        "image": "input_cost_per_image",
    }
    out = {name: usd_per_unit_to_pusd(fact[key]) for name, key in fields.items() if fact.get(key) is not None}
    if not out.get("image"):
        out.pop("image", None)  # 0 per image is the default; keep the file small
    return out


def supported_parameters(fact: dict[str, Any]) -> list[str]:
    params = list(BASE_PARAMETERS)
    if fact.get("supports_function_calling"):
        params += ["tools", "tool_choice"]
    if fact.get("supports_response_schema"):
        params += ["response_format", "structured_outputs"]
    if fact.get("supports_reasoning"):
        params += ["reasoning", "include_reasoning"]
    return params


def name_tokens(slug: str) -> tuple[str, ...]:
    """Comparable form of a model slug: lowercase words and numbers; `-`, `.`, `_` and case do not matter."""
    words = re.findall(r"[a-z]+|\d+", slug.lower())
    if words[:2] == ["meta", "llama"]:
        words = words[1:]  # "Meta-Llama-3.1-8B" is OpenRouter's "llama-3.1-8b"
    return tuple(w for w in words if w != "v")  # "llama-v3p1" vs "llama-3.1", "mimo-v2" vs "mimo-2"


@dataclass(frozen=True)
class Candidate:
    """One direct-provider entry and the OpenRouter-style name it may match."""

    provider: str
    upstream_id: str
    author: str | None  # OpenRouter author if known
    slug: str  # provider's model name without vendor prefix
    rank: int  # lower wins when several entries of one provider match the same model
    quantization: str | None
    fact: dict[str, Any]


def direct_candidate(fact: dict[str, Any]) -> Candidate | None:
    provider, author, prefix = DIRECT[fact["provider"]]
    key: str = fact["key"]
    if not key.startswith(prefix):
        return None  # bare duplicates (gemini-pro-latest) and Together's size-tier price rows
    upstream, rank = key.removeprefix(prefix), 0
    if provider == "fireworks":
        if upstream.startswith("accounts/fireworks/routers/"):
            return None  # speed/region routers, not models
        rank = 0 if upstream.startswith("accounts/") else 1  # short alias of the same upstream id
        upstream = "accounts/fireworks/models/" + upstream.removeprefix("accounts/fireworks/models/")
        slug = re.sub(r"(\d)p(\d)", r"\1.\2", upstream.rsplit("/", 1)[1])  # glm-4p5 -> glm-4.5
    elif provider == "amazon-bedrock":
        first, _, rest = upstream.partition(".")
        geo, rest = (first, rest) if first in BEDROCK_GEOS else ("", upstream)
        if geo not in BEDROCK_GEO_RANK or "." not in rest or "@" in rest:
            return None
        vendor, _, slug = rest.partition(".")
        author, rank = AUTHOR_ALIASES.get(vendor, vendor), BEDROCK_GEO_RANK[geo]
        # anthropic.claude-sonnet-4-5-20250929-v1:0 / openai.gpt-oss-120b-1:0 -> the model's plain name
        slug = re.sub(r"(-\d{8})?(-v\d+)?$", "", re.sub(r"-v?\d+:\d+$", "", slug))
    elif "/" in upstream and provider not in {"anthropic", "openai"}:
        org, slug = upstream.split("/", 1)
        author = AUTHOR_ALIASES.get(org.lower(), org.lower())
    else:
        slug = upstream
    quantization = None
    if match := re.search(r"-(fp8|fp4|bf16)$", slug, re.IGNORECASE):
        quantization, slug = match.group(1).lower(), slug[: match.start()]
    if provider == "together" and slug.lower().endswith("-instruct-turbo"):
        quantization, slug = "fp8", slug[: -len("-turbo")]  # Together's Turbo = its FP8 serving of the model
    if quantization:
        rank += 10  # the unquantized entry of the same provider wins
    if not slug or not SAFE_ID.match(upstream):
        return None
    return Candidate(provider, upstream, author, slug, rank, quantization, fact)


def is_live(fact: dict[str, Any]) -> bool:
    if fact.get("mode") != "chat" or (fact.get("deprecation_date") or "9999") < SNAPSHOT_DATE:
        return False
    return fact.get("input_cost_per_token") is not None and fact.get("output_cost_per_token") is not None


def find_model(cand: Candidate, index: dict[tuple[str, ...], list[str]], authors: set[str]) -> str | None:
    """The OpenRouter id `cand` surely is, or None: same author and name, else a name unique across authors
    when the provider gave no author OpenRouter knows (Fireworks, Cerebras, small HF orgs)."""
    tokens = name_tokens(cand.slug)
    options = [tokens]
    if cand.provider in {"cerebras", "groq"}:  # these drop OpenRouter's "-instruct" / "-it" suffixes
        options += [(*tokens, "instruct"), (*tokens, "it")]
    for toks in options:
        ids = index.get(toks, [])
        if cand.author in authors:
            ids = [i for i in ids if i.split("/")[0] == cand.author]
        if len(ids) == 1:
            return ids[0]
    return None


def endpoint(
    provider: str, upstream_id: str, fact: dict[str, Any], model_context: int, quantization: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": provider,
        "upstream_id": upstream_id,
        "context_length": fact.get("max_input_tokens") or model_context,
        "pricing": pricing(fact),
        "supported_parameters": supported_parameters(fact),
    }
    if fact.get("max_output_tokens"):
        out["max_completion_tokens"] = fact["max_output_tokens"]
    if fact.get("supports_vision"):
        out["input_modalities"] = ["text", "image"]
    if quantization:
        out["quantization"] = quantization
    return out


def title(slug: str) -> str:
    """A readable model title from a slug: "claude-sonnet-4-5-20250929" -> "Claude Sonnet 4.5 (2025-09-29)"."""
    date = re.search(r"-(\d{4})-?(\d{2})-?(\d{2})$", slug)
    if date and date.group(1).startswith("20"):
        slug = slug[: date.start()]
    words: list[str] = []
    for word in slug.split("-"):
        low = word.lower()
        if words and re.fullmatch(r"\d{1,2}", low) and re.fullmatch(r"\d+(\.\d+)*", words[-1]):
            words[-1] += "." + low  # version written with dashes: "4-5" -> "4.5"
        elif re.fullmatch(r"o\d+", low):
            words.append(low)  # OpenAI's o-series stays lowercase: "o3", "o4-mini"
        elif low in WORD_SPELLINGS:
            words.append(WORD_SPELLINGS[low])
        elif re.fullmatch(r"a?\d+(\.\d+)?[bt]", low):
            words.append(word.upper())  # parameter counts: 70B, A22B, 2.4T
        else:
            words.append(word[:1].upper() + word[1:])
    text = re.sub(r"^GPT (\w)", r"GPT-\1", " ".join(words))  # "GPT-4o Mini", as OpenAI writes it
    return f"{text} ({'-'.join(date.groups())})" if date and date.group(1).startswith("20") else text


def english_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def model_record(model_id: str, fact: dict[str, Any]) -> dict[str, Any]:
    author, slug = model_id.split("/", 1)
    free = slug.endswith(":free")
    slug = slug.removesuffix(":free")
    author_name = AUTHOR_NAMES.get(author, author.replace("-", " ").title())
    name = f"{author_name}: {title(slug)}" + (" (free)" if free else "")
    context = fact.get("max_input_tokens") or fact.get("max_output_tokens") or FALLBACK_CONTEXT_TOKENS
    skills = [
        label
        for flag, label in (
            ("supports_function_calling", "tool calling"),
            ("supports_vision", "image input"),
            ("supports_response_schema", "structured outputs"),
            ("supports_reasoning", "reasoning"),
        )
        if fact.get(flag)
    ]
    description = f"{title(slug)} by {author_name}, with a {context:,}-token context window"
    description += f", supporting {english_list(skills)}." if skills else "."
    tokenizer = TOKENIZERS.get(author, "Llama3" if "llama" in slug else "Other")
    return {
        "id": model_id,
        "name": name,
        "description": description,
        "context_length": context,
        "created": CREATED_S,
        "tokenizer": tokenizer,
        "supports_reasoning": bool(fact.get("supports_reasoning")),
        "input_modalities": ["text", "image"] if fact.get("supports_vision") else ["text"],
        "endpoints": [],
    }


def openrouter_models(facts: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for fact in facts:
        if fact["provider"] != "openrouter" or not is_live(fact):
            continue
        model_id = fact["key"].removeprefix("openrouter/")
        if not PUBLIC_ID.match(model_id) or model_id.split("/")[0] in ROUTER_AUTHORS:
            continue  # :batch/:exacto variants, ~aliases, routers
        record = model_record(model_id, fact)
        record["endpoints"].append(endpoint("openrouter", model_id, fact, record["context_length"]))
        models[model_id] = record
    return models


def add_direct_endpoints(models: dict[str, dict[str, Any]], facts: Iterable[dict[str, Any]]) -> None:
    index: dict[tuple[str, ...], list[str]] = {}
    for model_id in models:
        if not model_id.endswith(":free"):
            index.setdefault(name_tokens(model_id.split("/", 1)[1]), []).append(model_id)
    authors = {model_id.split("/")[0] for model_id in models}
    best: dict[tuple[str, str], Candidate] = {}
    for fact in facts:
        if fact["provider"] not in DIRECT or not is_live(fact) or fact["key"].startswith("ft:"):
            continue
        cand = direct_candidate(fact)
        if cand is None:
            continue
        model_id = find_model(cand, index, authors)
        if model_id is None:
            model_id = direct_only_id(cand)
            if model_id is None or name_tokens(cand.slug) in index:
                continue  # a sibling entry of this provider already serves the OpenRouter model
            models.setdefault(model_id, model_record(model_id, fact))
        current = best.get((model_id, cand.provider))
        if current is None or (cand.rank, cand.upstream_id) < (current.rank, current.upstream_id):
            best[(model_id, cand.provider)] = cand
    for (model_id, _), cand in sorted(best.items()):
        record = models[model_id]
        record["endpoints"].append(
            endpoint(cand.provider, cand.upstream_id, cand.fact, record["context_length"], cand.quantization)
        )


def direct_only_id(cand: Candidate) -> str | None:
    """A public id for a model only its maker sells directly, or None when unsure."""
    if cand.provider not in DIRECT_ONLY_OK or cand.author is None or cand.rank != 0:
        return None
    slug = cand.upstream_id.lower()
    if any(word in slug for word in NOT_CHAT_WORDS) or slug.startswith(("glm", "zai-", "gemini-gemma")):
        return None  # GLM on Mistral's API is Z.ai's model; gemini-gemma-* is an alias of a Gemma model
    if {"beta", "exp", "experimental"} & set(slug.split("-")):
        return None  # short-lived previews OpenRouter never listed
    model_id = f"{cand.author}/{slug}"
    return model_id if PUBLIC_ID.match(model_id) else None


def build(facts_path: Path) -> tuple[str, dict[str, int]]:
    raw = facts_path.read_bytes()
    facts = sorted(json.loads(raw)["models"], key=lambda fact: fact["key"])
    models = openrouter_models(facts)
    add_direct_endpoints(models, facts)
    counts: dict[str, int] = {"models": len(models)}
    lines = []
    for model_id in sorted(models):
        record = models[model_id]
        record["endpoints"].sort(key=lambda e: e["provider"])
        for ep in record["endpoints"]:
            counts[ep["provider"]] = counts.get(ep["provider"], 0) + 1
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    header = {
        "about": "Built-in models, endpoints and prices (integer pUSD per token; per image for `image`). "
        "Generated by scripts/build_catalog.py; do not edit by hand.",
        "snapshot_date": SNAPSHOT_DATE,
        "source": "model-facts.json",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
    }
    head = json.dumps(header, sort_keys=True, ensure_ascii=False)[:-1]
    return head + ',\n"models":[\n' + ",\n".join(lines) + "\n]}\n", counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("facts", nargs="?", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text, counts = build(args.facts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.encode()):,} bytes, {counts.pop('models')} models)")
    for provider, count in sorted(counts.items()):
        print(f"  {provider}: {count} endpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())

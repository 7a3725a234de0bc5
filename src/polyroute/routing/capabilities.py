"""Pure: drop the planned attempts whose endpoint cannot serve the request, before any upstream call.

An endpoint declares what it takes in `input_modalities` (text, image, file, audio, video) and
`supported_parameters` (tools, tool_choice, response_format, structured_outputs, ...); an endpoint
that lists no parameters is taken to support them all. When nothing is left the request is refused
with OpenRouter's 404 naming the missing capability, e.g. "No endpoints found that support tool use."
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from polyroute.catalog.types import EndpointSpec
from polyroute.domain.chat import ChatRequest
from polyroute.domain.errors import NotFound
from polyroute.routing.plan import Attempt

# Content part type -> the input modality it needs.
_PART_MODALITIES = {
    "image_url": "image",
    "input_image": "image",
    "file": "file",
    "input_audio": "audio",
    "video_url": "video",
    "input_video": "video",
}
_TOOL_CHOICE_WORDS = ("auto", "none")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One thing the request needs from an endpoint, and how to say that no endpoint has it."""

    describes: str  # "tool use", "image input", ... (used in the error message)
    met_by: Callable[[EndpointSpec], bool]


def _modality(name: str) -> Requirement:
    return Requirement(f"{name} input", lambda endpoint: name in endpoint.input_modalities)


def _parameter(describes: str, *names: str) -> Requirement:
    def met_by(endpoint: EndpointSpec) -> bool:
        supported = endpoint.supported_parameters
        return not supported or any(name in supported for name in names)

    return Requirement(describes, met_by)


def input_modalities(messages: list[dict[str, Any]]) -> list[str]:
    """The non-text modalities the messages' content parts use, in a stable order."""
    found: dict[str, None] = {}
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and (modality := _PART_MODALITIES.get(str(part.get("type")))):
                found[modality] = None
    return list(found)


def requirements(request: ChatRequest) -> list[Requirement]:
    params = request.params
    needs = [_modality(modality) for modality in input_modalities(request.messages)]
    if params.get("tools"):
        needs.append(_parameter("tool use", "tools"))
        if params.get("tool_choice") is not None and params.get("tool_choice") not in _TOOL_CHOICE_WORDS:
            needs.append(_parameter("the provided 'tool_choice' value", "tool_choice"))
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        describes = "structured outputs (response_format json_schema)"
        needs.append(_parameter(describes, "structured_outputs", "response_format"))
    return needs


def capable_attempts(request: ChatRequest, attempts: Sequence[Attempt]) -> list[Attempt]:
    """The attempts whose endpoint meets every requirement, in plan order.

    Raises NotFound ("No endpoints found that support <capability>.") when none is left.
    """
    needs = requirements(request)
    if not needs:
        return list(attempts)
    kept = [a for a in attempts if all(need.met_by(a.endpoint) for need in needs)]
    if kept or not attempts:
        return kept
    missing = [need.describes for need in needs if not any(need.met_by(a.endpoint) for a in attempts)]
    models = ", ".join(dict.fromkeys(a.model.id for a in attempts))
    # Each capability may exist somewhere while no single endpoint has them all.
    reason = " and ".join(missing) if missing else "all of " + ", ".join(need.describes for need in needs)
    raise NotFound(
        f"No endpoints found that support {reason}.",
        metadata={"models": models, "unsupported": missing or [need.describes for need in needs]},
    )

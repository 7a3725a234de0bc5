"""Pure: what a Claude model accepts, read from its id (on Anthropic's API and on Bedrock alike).

Claude Opus 4.7 and later (every tier from 4.7, the 5 generation, Fable and Mythos) refuse the sampling
knobs (`temperature`, `top_p`, `top_k`: "... is deprecated for this model") and a fixed thinking budget:
they think adaptively, steered by `output_config.effort`. 4.6 models take adaptive thinking too (the
budget form is deprecated there). Older models, and ids we cannot read (Anthropic-compatible hosts),
get the classic `thinking: {type: enabled, budget_tokens}` and keep their sampling knobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from polyroute.providers.chat_input import EFFORT_RATIO, ReasoningAsk

_NEW_NAME = re.compile(r"claude-(opus|sonnet|haiku|fable|mythos)-(\d+)(?:[-.](\d{1,2})(?!\d))?")
_OLD_NAME = re.compile(r"claude-(\d+)(?:[-.](\d))?-(opus|sonnet|haiku)")
_ALWAYS_ADAPTIVE = frozenset({"fable", "mythos"})
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class ClaudeTraits:
    sampling: bool  # takes temperature / top_p / top_k
    adaptive_thinking: bool  # thinks with {type: adaptive} + output_config.effort, not a token budget


LEGACY = ClaudeTraits(sampling=True, adaptive_thinking=False)


def claude_traits(model_id: str) -> ClaudeTraits:
    if match := _NEW_NAME.search(model_id):
        family, major, minor = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    elif match := _OLD_NAME.search(model_id):
        family, major, minor = match.group(3), int(match.group(1)), int(match.group(2) or 0)
    else:
        return LEGACY
    if family in _ALWAYS_ADAPTIVE or (major, minor) >= (4, 7):
        return ClaudeTraits(sampling=False, adaptive_thinking=True)
    return ClaudeTraits(sampling=True, adaptive_thinking=(major, minor) >= (4, 6))


def effort_of(reasoning: ReasoningAsk, max_tokens: int) -> str:
    """Anthropic's effort level for the client's ask: its effort, or the level nearest an explicit budget."""
    if reasoning.max_tokens is None:
        return {"minimal": "low"}.get(
            reasoning.effort, reasoning.effort if reasoning.effort in ANTHROPIC_EFFORTS else "medium"
        )
    share = reasoning.max_tokens / max(max_tokens, 1)
    levels = {level: ratio for level, ratio in EFFORT_RATIO.items() if level in ANTHROPIC_EFFORTS and level != "xhigh"}
    return min(levels, key=lambda level: abs(levels[level] - share))

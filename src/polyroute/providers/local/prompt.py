"""Pure: chat messages -> the prompt text a local model expects.

Instruction-tuned GGUF files carry a Jinja chat template (`tokenizer.chat_template`), rendered
here the way Hugging Face renders it (sandboxed). Gemma base models ship none: they get Gemma's
turn format, with the system prompt folded into the first user turn (Gemma has no system role).
"""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

GEMMA_FORMAT = "gemma"


def message_text(content: Any) -> str:
    """Plain text of a message's content (multi-part content: its text parts, in order)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return str(content)


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Roles and text only; `developer` counts as `system`, tool results as user-visible text."""
    out = []
    for message in messages:
        role = message.get("role", "user")
        role = {"developer": "system", "tool": "user", "function": "user"}.get(role, role)
        out.append({"role": role, "content": message_text(message.get("content"))})
    return out


def _raise(message: str) -> None:
    raise ValueError(message)


def render_template(template: str, messages: list[dict[str, Any]], *, bos_token: str, eos_token: str) -> str:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise
    return environment.from_string(template).render(
        messages=plain_messages(messages),
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=True,
    )


def gemma_prompt(messages: list[dict[str, Any]]) -> str:
    """Gemma's turns: `<start_of_turn>user\\n…<end_of_turn>\\n<start_of_turn>model\\n` (BOS added by the tokenizer)."""
    turns: list[str] = []
    system = ""
    for message in plain_messages(messages):
        if message["role"] == "system":
            system += message["content"] + "\n\n"
            continue
        role = "model" if message["role"] == "assistant" else "user"
        text = message["content"]
        if role == "user" and system:
            text, system = system + text, ""
        turns.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    return "".join(turns) + "<start_of_turn>model\n"

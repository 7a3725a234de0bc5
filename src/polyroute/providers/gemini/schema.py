"""Pure: a JSON Schema (what OpenAI clients send) -> Gemini's `Schema` (an OpenAPI 3.0 subset).

Used for `functionDeclarations[].parameters` and `generationConfig.responseSchema`. Gemini refuses
keys it does not know (`additionalProperties`, `$schema`, `$ref`, ...) and an empty `properties` map,
wants `nullable` instead of `"null"` in a type list, and upper-case type names; local `$ref`s into
`$defs` are inlined.
"""

from __future__ import annotations

from typing import Any

_PLAIN_KEYS = (
    "format",
    "description",
    "title",
    "nullable",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "propertyOrdering",
    "default",
    "example",
)
_MAX_REF_DEPTH = 8  # recursive schemas cannot be inlined; deeper references become plain objects


def gemini_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is None or depth >= _MAX_REF_DEPTH:
            return {"type": "OBJECT"}
        return gemini_schema({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs, depth + 1)
    out: dict[str, Any] = {}
    _set_type(out, schema)
    for key in _PLAIN_KEYS:
        if key in schema:
            out[key] = schema[key]
    if "const" in schema and "enum" not in out:
        out["enum"] = [schema["const"]]
    if "enum" in out:
        out["enum"] = [str(v) for v in out["enum"] if v is not None]
        out.setdefault("type", "STRING")  # Gemini's enums are string enums
    if isinstance(schema.get("properties"), dict) and schema["properties"]:  # Gemini refuses an empty map
        out["properties"] = {name: gemini_schema(sub, defs, depth) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"], defs, depth)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        non_null = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(non_null) < len(variants):
            out["nullable"] = True
        if len(non_null) == 1:
            out.update({k: v for k, v in gemini_schema(non_null[0], defs, depth).items() if k not in out})
        elif non_null:
            out["anyOf"] = [gemini_schema(v, defs, depth) for v in non_null]
    return out


def _set_type(out: dict[str, Any], schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kinds = [k for k in kind if k != "null"]
        if len(kinds) > 1:
            out["anyOf"] = [{"type": str(k).upper()} for k in kinds]
            return
        kind = kinds[0] if kinds else None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    elif "properties" in schema:
        out["type"] = "OBJECT"

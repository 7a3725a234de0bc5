"""Keep the dependency rule of docs/architecture.md true: fail if a module imports a layer it must not.

domain imports nothing of ours; feature packages import domain (and routing may read catalog,
providers may read catalog types and settings) but not each other; only relay composes them;
http, web and cli sit on top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "polyroute"
TOP = {"http", "web", "cli", "__main__", "logging_setup"}
# package -> packages it may import (besides itself and domain)
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "settings": set(),
    "catalog": {"settings"},
    "providers": {"catalog", "settings"},
    "routing": {"catalog"},
    "billing": {"catalog", "db"},
    "accounts": {"settings", "db"},
    "limits": {"settings"},
    "usage_log": {"db", "settings"},
    "db": {"settings", "migrations"},
    "migrations": {"db", "settings"},
    "relay": {
        "accounts",
        "billing",
        "catalog",
        "providers",
        "routing",
        "usage_log",
        "limits",
        "relay_failures",
        "observability",
    },
    "relay_failures": {"providers", "routing"},
    "observability": {"settings"},
    "cache_bus": set(),
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def main() -> int:
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        layer = layer_of(".".join(rel.parts))
        if layer in TOP or layer == "__init__":
            continue
        allowed = ALLOWED.get(layer)
        if allowed is None:
            problems.append(f"{path}: package '{layer}' has no rule in scripts/check_layers.py")
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("polyroute."):
                target = layer_of(node.module)
                if target not in allowed | {layer, "domain"}:
                    problems.append(f"{path}:{node.lineno}: {layer} must not import {node.module}")
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Real-browser helpers: Debian's Chromium driven by Playwright (never a downloaded browser), axe-core
vendored from the npm registry into a cache directory, screenshots under test-results/web/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.gateway import REPO_ROOT

CHROMIUM = Path(os.environ.get("POLYROUTE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AXE_PREFIX = Path(os.environ.get("POLYROUTE_AXE_DIR", Path.home() / ".cache" / "polyroute-axe"))
AXE_JS = AXE_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
RESULTS_DIR = REPO_ROOT / "test-results" / "web"


def require_chromium() -> Path:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `apt-get install -y chromium` (as .ci/run does)")
    return CHROMIUM


def axe_source() -> str:
    """axe-core's script, installed from the npm registry into the cache on first use."""
    if not AXE_JS.exists():
        AXE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(AXE_PREFIX), "axe-core@4"], check=True, timeout=300
        )
    return AXE_JS.read_text()


def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """Run axe-core in the page (evaluated over the DevTools protocol, so the page's CSP still holds)."""
    page.evaluate(source + "\n;undefined")
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target)}))"
    )
    return violations

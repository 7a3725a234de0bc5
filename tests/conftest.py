"""Fixtures shared by all tests: a fresh database of each kind, so store tests run on both; the hooks of
the session-wide leak scan (tests/support/leak_scan.py: no secret nor prompt in any log the suite wrote)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

# Let a plain checkout run the tests without `pip install -e .` (src layout).
_SRC_DIR = str(Path(__file__).resolve().parent.parent / "src")
if _SRC_DIR not in sys.path:
    sys.path.insert(0, _SRC_DIR)

from polyroute.db.engine import create_engine  # noqa: E402
from polyroute.db.migrate import upgrade_database  # noqa: E402
from tests.support import leak_scan  # noqa: E402
from tests.support.databases import fresh_database  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database: a SQLite file, then a throwaway PostgreSQL database."""
    async with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def migrated_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database already migrated to the newest schema."""
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


# --- the session-wide leak scan (issue #10) --------------------------------------------------------------
_LEAK_SCAN_OWNER = pytest.StashKey[bool]()
_LEAK_SCAN_REPORT = pytest.StashKey[leak_scan.ScanReport]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LEAK_SCAN_OWNER] = leak_scan.start_session()


def pytest_collection_finish(session: pytest.Session) -> None:
    modules = {id(item.module): item.module for item in session.items if getattr(item, "module", None)}
    modules |= {id(plugin): plugin for plugin in session.config.pluginmanager.get_plugins() if _is_conftest(plugin)}
    leak_scan.register_module_constants(modules.values())


def _is_conftest(plugin: object) -> bool:
    return str(getattr(plugin, "__file__", "")).endswith("conftest.py")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan every log the session wrote; a leak fails the run (the exit status is read after this hook)."""
    report = leak_scan.finish_session(session.config.stash.get(_LEAK_SCAN_OWNER, False))
    if report is None:
        return
    session.config.stash[_LEAK_SCAN_REPORT] = report
    if report.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(_LEAK_SCAN_REPORT, None)
    if report is None or (report.logs == 0 and not report.missing):
        return
    terminalreporter.section("leak scan (issue #10)", red=bool(report.findings), green=not report.findings)
    for finding in report.findings:
        terminalreporter.line(f"LEAK {finding}", red=True)
    terminalreporter.line(report.summary())

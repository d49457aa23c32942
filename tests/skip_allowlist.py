"""Under CI=true a skip fails the session unless this allowlist names it (a pytest plugin).

A skip is how a test says "this machine cannot show it"; in CI that must be the exception a
person chose, not a tier that quietly stopped running. Each entry names where the skip may
happen (a node id prefix) and why (its reason, matched from the start), so an allowed skip
elsewhere, or for another reason, still fails. Without CI=true skips are reported as usual.
"""

import os
import re
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Allowed:
    where: str   # node id prefix
    reason: str  # regular expression matched at the start of the skip's reason
    why: str     # why CI may skip it


ALLOWED = (
    Allowed("tests/kind/", r"tier 3: set SMARTID_KIND_CONTEXT|SMARTID_KIND_IMAGE not set",
            "the kind tier needs Docker and kind; CI runs it in its own job (make e2e-kind)"),
    Allowed("tests/cluster/test_backup_engine.py::"
            "test_each_engine_restores_the_others_dumps_with_the_official_tools",
            r"the official mongodump/mongorestore are not on PATH",
            "no registry ships MongoDB's tools; the kind tier cross-restores with the image's"),
    Allowed("tests/cluster/test_backup_engine.py::"
            "test_views_are_dumped_as_metadata_and_restored_last",
            r"this server has no views",
            "a gap of the stand-in: FerretDB v1.24.2 has no views (docs/testbed.md)"),
)

def reason_of(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def allowed(nodeid: str, reason: str) -> bool:
    return any(nodeid.startswith(a.where) and re.match(a.reason, reason) for a in ALLOWED)


class SkipGuard:
    """Collects every skip of the session; under CI=true the unlisted ones fail it."""

    def __init__(self) -> None:
        self.skips: list[tuple[str, str]] = []

    def unexpected(self) -> list[tuple[str, str]]:
        if os.environ.get("CI") != "true":
            return []
        return [(n, r) for n, r in self.skips if not allowed(n, r)]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((report.nodeid, reason_of(report)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        skips = self.unexpected()
        if skips:
            terminalreporter.section("skips not allowed under CI=true", red=True)
            for nodeid, reason in skips:
                terminalreporter.line(f"SKIPPED (not allowed) {nodeid}: {reason}", red=True)
            terminalreporter.line("Make the test run here, or add it to tests/skip_allowlist.py"
                                  " with the reason CI may skip it.")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(), "smartid-skip-guard")

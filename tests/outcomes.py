"""Each test's reports by phase, kept on its item (tests/conftest.py records them), so that a fixture can tell
at teardown whether its test failed."""

from __future__ import annotations

import pytest

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def failed(request: pytest.FixtureRequest, phases: tuple[str, ...] = ("setup", "call")) -> bool:
    """Whether the test of `request` failed in one of `phases` ("setup", "call")."""
    reports = request.node.stash.get(REPORTS, {})
    return any(report.failed for when, report in reports.items() if when in phases)

"""The browser suite on a machine without Chromium: skipped by hand, but a failure in CI
(``CI`` set, as ``.ci/run`` does), where a missing browser is a broken install step and
skipping would pass the run without a single page looked at."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# pytest run in a child whose Chromium lookups find nothing: no known path, no PATH entry.
RUN_WITHOUT_CHROMIUM = """
import sys
import pytest
import tests.support.browser as browser
browser.CHROMIUM_CANDIDATES = ()
sys.exit(pytest.main(["-p", "no:cacheprovider", "-q", sys.argv[1]]))
"""
A_BROWSER_TEST = "tests/browser/test_public_pages.py::test_the_page_checks_catch_what_they_look_for"


def run_browser_test_without_chromium(ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = "/nonexistent"  # shutil.which("chromium") finds nothing either
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_CHROMIUM, A_BROWSER_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_without_chromium_the_browser_suite_fails_in_ci():
    result = run_browser_test_without_chromium("true")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "Debian's Chromium is missing" in output, output
    assert "1 error" in output and "skipped" not in output, output


@pytest.mark.slow
def test_without_chromium_the_browser_suite_is_skipped_outside_ci():
    result = run_browser_test_without_chromium(None)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.OK, output
    assert "1 skipped" in output and "Debian's Chromium is missing" in output, output

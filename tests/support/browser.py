"""Headless Chromium for the web pages' end-to-end tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is never used (the machine has no internet at run time): the test
launches ``/usr/bin/chromium`` by ``executable_path``. Without it, or without the ``playwright``
package, a browser test is skipped on a laptop and fails under CI=true (``.ci/services`` installs both).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("PTR_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1280, 800)) -> Iterator[Any]:
    """A fresh Playwright page in headless Chromium with an empty profile; closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed; run .ci/services")
    if not os.path.exists(CHROMIUM):
        _missing(f"{CHROMIUM} is missing; install Debian's chromium package (.ci/services does)")
    profile = tempfile.mkdtemp(prefix="ptr-chromium-")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(
                    viewport={"width": viewport[0], "height": viewport[1]},
                    ignore_https_errors=True)
                yield context.new_page()
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with chromium_page() as page:
        yield page

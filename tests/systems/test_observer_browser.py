"""The web observer end to end, in headless Chromium: load the page, see the tree, crash an actor
from the page (confirming), see its restart appear, live, without reloading."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.browser import chromium_page
from tests.support.observed import ObservedRun, observed

__all__ = ["observed"]
pytestmark = pytest.mark.multiproc


def test_crash_an_actor_from_the_page_and_see_it_restart(
        observed: Callable[..., ObservedRun]) -> None:
    run = observed("ping", "--set", "interval_s=0.1", "--allow-chaos")
    with chromium_page() as page:
        page.goto(run.url)
        ponger = page.locator('#tree tr[data-path="/ping/ponger"]')
        ponger.wait_for(timeout=15_000)
        assert page.locator("#live").inner_text(timeout=5_000) == "live"
        assert "Ponger" in ponger.inner_text() and "running" in ponger.inner_text()
        assert ponger.locator("td.restarts").inner_text() == "0"
        assert page.locator('#tree tr[data-path="/ping/pinger"]').count() == 1
        asked: list[str] = []

        def confirm(dialog: object) -> None:
            asked.append(dialog.message)  # type: ignore[attr-defined]
            dialog.accept()  # type: ignore[attr-defined]
        page.once("dialog", confirm)
        ponger.locator('button[data-fault="crash"]').click()
        page.locator("#timeline li.k-restart", has_text="/ping/ponger").wait_for(timeout=15_000)
        assert asked == ["crash /ping/ponger?"]
        page.wait_for_function(
            "document.querySelector('#tree tr[data-path=\"/ping/ponger\"] td.restarts')"
            ".textContent === '1'", timeout=10_000)
        timeline = page.locator("#timeline").inner_text()
        assert "crash from the observer" in timeline
        assert "ChaosInjectedError" in timeline  # the exit, with its reason
        exit_cell = ponger.locator("td.exit")
        assert "error: ChaosInjectedError" in exit_cell.inner_text()
        exit_cell.click()
        assert "Traceback" in page.locator("#traceback pre").inner_text(timeout=5_000)
    out, _ = run.stop()
    assert run.proc.returncode == 0 and "stopped; 0 actor processes left" in out


def test_without_allow_chaos_the_page_offers_no_faults_and_the_api_refuses(
        observed: Callable[..., ObservedRun]) -> None:
    run = observed("ping")
    with chromium_page() as page:
        page.goto(run.url)
        page.locator('#tree tr[data-path="/ping/ponger"]').wait_for(timeout=15_000)
        assert page.locator("#chaos").inner_text() == "faults off"
        assert not page.locator('button[data-fault="crash"]').first.is_visible()
    status, body = run.post_fault(kind="crash", target="/ping/ponger")
    assert status == 403 and body["kind"] == "forbidden" and "--allow-chaos" in body["error"]
    run.stop()
    assert run.proc.returncode == 0

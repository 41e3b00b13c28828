"""DATA_CARD.html in headless Chromium: every plot loads and the funnel adds up."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.release.conftest import Published

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="needs Debian chromium (apt-get install -y chromium)",
)
def test_card_plots_load_and_funnel_adds_up(published: Published) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    card = published.out / "DATA_CARD.html"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(card.as_uri())
            widths = page.eval_on_selector_all("img.plot", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
            assert len(widths) >= 10 and all(width > 0 for width in widths), widths
            stages = page.eval_on_selector_all(
                "#funnel tr[data-stage]", "rows => rows.map(r => [r.dataset.stage, Number(r.dataset.count)])"
            )
            text = page.inner_text("body")
        finally:
            browser.close()
    counts: dict[str, int] = {}
    for stage, count in stages:
        counts[stage] = counts.get(stage, 0) + count
    assert counts["in"] == sum(count for stage, count in counts.items() if stage != "in")
    assert counts["released"] > 0 and counts.get("held", 0) > 0
    assert "re-identify" in text

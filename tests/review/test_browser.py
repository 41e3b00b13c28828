"""The Done-when test: in real headless Chromium a reviewer draws a missed face and approves with a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.review.queue import ReviewRegion
from deid.types import RegionKind, Status
from tests.assertions import assert_no_pixel_survives
from tests.review.conftest import Served
from tests.review.workspaces import CONFIG, FACE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]


def _run_review_flow(served: Served, tmp_path: Path) -> str:
    """The `review` Prefect flow in its own process (it starts a temporary local Prefect server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PYTHONPATH=str(REPO),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )  # a shared 2-core machine is slow
    code = (
        "from flows.review import run_review; "
        f"s = run_review(workspace={str(served.built.workspace.root)!r}, config_path={str(CONFIG)!r}); "
        "print(s.to_json()['counts'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make apt installs it)")
def test_reviewer_draws_a_missed_face_approves_with_a_key_and_the_staged_pixels_are_filled(
    served: Served, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    item_id = served.item_id(route="image")
    item = served.store.item(item_id)
    image_id = item.subject
    assert item.reason_code == "text_rule_hold"
    assert not any(r.region.kind is RegionKind.FACE for r in item.regions), "no detector proposed the face"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        # bypass_csp lets Playwright evaluate its own waits; the page itself runs only /static/review.js.
        page = browser.new_page(viewport={"width": 1600, "height": 1400}, bypass_csp=True)
        page.goto(f"{served.url}/login")
        page.fill("#name", "ana")
        page.fill("#password", served.passwords["ana"])
        page.click("#signin")
        page.wait_for_load_state()
        assert page.url == f"{served.url}/", (page.url, page.content()[:3000])
        page.click(f'a.open[href^="/items/{item_id}"]')
        page.wait_for_function("document.getElementById('original').naturalWidth > 0")
        box = page.locator("#boxes").bounding_box()
        assert box is not None
        width, item_height = 512, served.built.ledger.image_details(image_id).height
        assert item_height is not None

        def screen(x: float, y: float) -> tuple[float, float]:
            return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / item_height

        with page.expect_response(lambda r: r.url.endswith("/boxes") and r.status == 200):
            page.mouse.move(*screen(FACE.left, FACE.top))
            page.mouse.down()
            page.mouse.move(*screen((FACE.left + FACE.right) / 2, (FACE.top + FACE.bottom) / 2), steps=4)
            page.mouse.move(*screen(FACE.right, FACE.bottom), steps=4)
            page.mouse.up()
        # The candidate shown is re-rendered by the server from the original after the edit.
        page.wait_for_function("document.getElementById('candidate').src.includes('v=2')")
        page.wait_for_function("document.getElementById('candidate').complete")
        with page.expect_response(lambda r: r.url.endswith("/decide")) as decided:
            page.keyboard.press("a")
        assert decided.value.status == 200, decided.value.text()
        page.wait_for_url(lambda url: f"/items/{item_id}" not in url)  # approving moves on
        browser.close()

    approved = served.store.item(item_id)
    assert approved.state == "approved" and approved.decided_by == "ana"
    drawn = [r for r in approved.regions if r.region.source == "review:ana"]
    assert len(drawn) == 1 and drawn[0].region.kind is RegionKind.FACE
    assert drawn[0].region.box.iou(FACE) > 0.9, f"drew {drawn[0].region.box}, meant {FACE}"

    printed = _run_review_flow(served, tmp_path)
    assert "'staged': 1" in printed, printed

    ledger = served.built.ledger
    record = ledger.image(image_id)
    assert record.status is Status.OK, record.reasons
    staged = served.built.workspace.staged_images / f"{image_id}.png"
    assert staged.exists() and not (served.built.workspace.held / f"{image_id}.png").exists()
    pixels = np.asarray(Image.open(staged).convert("RGB"))
    policy = served.built.config.policy
    for region in (drawn[0], *(ReviewRegion(r) for r in ledger.image_details(image_id).regions)):
        assert_no_pixel_survives(policy.padded_box(region.region, pixels.shape), pixels, policy.fill_rgb)
    assert_no_pixel_survives(FACE, pixels, policy.fill_rgb)

    trail = served.store.events(item_id)
    events = [(e.event, e.actor) for e in trail]
    assert ("viewed", "ana") in events and ("approved", "ana") in events and ("applied", "review-apply") in events
    edit = next(e for e in trail if e.event == "boxes_edited")
    assert edit.actor == "ana" and len(edit.after or []) == len(edit.before or []) + 1
    assert edit.model == [r.to_json() for r in item.model_regions], "the model's boxes are kept beside the human ones"
    recorded = ledger.latest_decision(image_id)
    assert recorded is not None and recorded.actor == "review:ana"
    assert any(r.kind is RegionKind.FACE and r.source == "review:ana" for r in recorded.decision.regions)
    assert any(e.actor == "review:ana" and e.event == "image_ok" for e in ledger.events(image_id))

"""End to end: the viewer in headless Chromium (Debian's ``chromium`` driven by Playwright,
no browser download) against a real server on 127.0.0.1.

It waits for frames to render, pauses and checks the step count stops, switches the
visualisation and checks the canvas changed, zooms (native ROI), applies a tool, switches
engines, and takes the screenshot shown in docs/server.md (written there when
``ATHERIA_UPDATE_SCREENSHOT=1``)."""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request

import pytest

pytest.importorskip("aiohttp")
sync_api = pytest.importorskip("playwright.sync_api")

from _serverproc import ROOT, ServerProc  # noqa: E402

CHROMIUM = os.environ.get("ATHERIA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium; scripts/setup_env.sh does it)")
SCREENSHOT = os.path.join(ROOT, "docs", "server_viewer.png")


def _status(url):
    with urllib.request.urlopen(url + "/api/status", timeout=10) as r:
        return json.loads(r.read())


def _canvas_pixels(page):
    return page.evaluate("document.getElementById('canvas').toDataURL()")


def test_viewer_end_to_end(demo_root, tmp_path):
    srv = ServerProc(demo_root, "--experiment", "DEMO_LOCAL_CONV", "--play", "--max-steps-per-s", "60",
                     "--max-fps", "20")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1160, "height": 640})
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(srv.url + "/")
                frames = "Number(document.getElementById('canvas').dataset.frames || 0)"
                page.wait_for_function(f"{frames} > 5", timeout=30000)
                page.wait_for_function("document.getElementById('engine-name').textContent.includes('native')")
                assert "builtin-conv" in page.inner_text("#engine-route")
                s1 = int(page.inner_text("#stat-step"))
                page.wait_for_function(f"Number(document.getElementById('stat-step').textContent) > {s1}")

                # pause: the step count stops, in the page and in the server
                page.click("#btn-pause")
                page.wait_for_function("document.getElementById('message').textContent === 'pause: ok'")
                page.wait_for_function("document.getElementById('stat-fps').textContent === 'paused'")
                stopped = int(page.inner_text("#stat-step"))
                assert _status(srv.url)["step"] == stopped and not _status(srv.url)["running"]
                time.sleep(1.0)
                assert int(page.inner_text("#stat-step")) == stopped
                assert _status(srv.url)["step"] == stopped

                # another visualisation: a new frame arrives and the canvas shows something else
                before, n_before = _canvas_pixels(page), page.evaluate(frames)
                page.select_option("#viz-select", "phase")
                page.wait_for_function(f"{frames} > {n_before}")
                page.wait_for_function(f"document.getElementById('canvas').toDataURL() !== {json.dumps(before)}")
                assert int(page.evaluate("document.getElementById('canvas').dataset.step")) == stopped

                # zoom in: the viewer asks for the visible region only
                box = page.locator("#canvas").bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.mouse.wheel(0, -300)
                page.wait_for_function("document.getElementById('roi-info').textContent.startsWith('ROI')")
                page.click("#btn-fit")
                page.wait_for_function("document.getElementById('roi-info').textContent.startsWith('whole grid')")

                # a tool on click
                page.select_option("#tool-select", "vortex")
                zoomed = _canvas_pixels(page)
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_function("document.getElementById('message').textContent === 'tool: ok'")
                page.wait_for_function(f"document.getElementById('canvas').toDataURL() !== {json.dumps(zoomed)}")

                # both engines on the same experiment, measured live
                page.click("#btn-python")
                page.wait_for_function("document.getElementById('engine-name').textContent.includes('python')",
                                       timeout=30000)
                assert "Python engine requested" in page.inner_text("#engine-reason")
                page.click("#btn-play")
                page.wait_for_function("document.getElementById('cmp-python-ms').textContent !== '–'",
                                       timeout=30000)
                page.click("#btn-native")
                page.wait_for_function("document.getElementById('engine-name').textContent.includes('native')",
                                       timeout=30000)
                page.wait_for_function("document.getElementById('cmp-native-ms').textContent !== '–'",
                                       timeout=30000)
                time.sleep(1.5)
                assert not errors, errors
                shot = str(tmp_path / "server_viewer.png")
                page.screenshot(path=shot)
                if os.environ.get("ATHERIA_UPDATE_SCREENSHOT") == "1":
                    shutil.copyfile(shot, SCREENSHOT)
                with open(shot, "rb") as fh:
                    assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
            finally:
                browser.close()
    finally:
        assert srv.stop() == 0, srv.log

"""End to end: the viewer in headless Chromium (Debian's ``chromium`` driven by Playwright,
no browser download) against a real server on 127.0.0.1.

It waits for frames to render, pauses and checks the step count stops, switches the
visualisation and checks the canvas changed, zooms (native ROI), applies a tool, switches
engines, and takes the screenshot shown in docs/server.md (written there when
``ATHERIA_UPDATE_SCREENSHOT=1``)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.request

import pytest

pytest.importorskip("aiohttp")
sync_api = pytest.importorskip("playwright.sync_api")

import numpy as np  # noqa: E402

from atheria_core.server.protocol import encode_frame  # noqa: E402

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
            # the browser is not ours to sanitize: under scripts/run_sanitizers.sh the
            # LD_PRELOADed ASan runtime would hang chromium's start (the server keeps it)
            env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONMALLOC")}
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"], env=env)
            try:
                page = browser.new_page(viewport={"width": 1160, "height": 700})
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

                # snapshots and history from the page
                page.click("#btn-snap-save")
                page.wait_for_function("document.getElementById('message').textContent.startsWith('snapshot saved')")
                page.wait_for_function("document.getElementById('snap-select').options.length >= 1")
                page.click("#btn-step")
                page.wait_for_function("document.getElementById('message').textContent === 'step: ok'")
                page.click("#btn-rewind")
                page.wait_for_function("document.getElementById('message').textContent === 'rewind: ok'")
                assert _status(srv.url)["step"] == stopped

                # RGB (e.g. holographic) and scalar frames through the page's own decoder
                _check_frame_decoding(page)

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
                # the analysis plot has drawn its lines
                page.wait_for_function(
                    "(() => { const c = document.getElementById('analysis-plot');"
                    " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                    " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })()",
                    timeout=30000)
                page.select_option("#viz-select", "real")
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


def _check_frame_decoding(page):
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]], np.float32)
    scalar = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    js = """(b64) => {
        const bin = atob(b64); const buf = new ArrayBuffer(bin.length); const u = new Uint8Array(buf);
        for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
        const f = parseFrame(buf); const img = frameToImage(f);
        return {w: f.width, h: f.height, c: f.channels, x0: f.x0, step: f.step, px: Array.from(img.data)};
    }"""
    out = page.evaluate(js, base64.b64encode(encode_frame(rgb, step=9, x0=3, y0=1, viz_index=0)).decode())
    assert (out["w"], out["h"], out["c"], out["x0"], out["step"]) == (2, 2, 3, 3, 9)
    px = np.array(out["px"]).reshape(2, 2, 4)
    np.testing.assert_array_equal(px[..., 3], 255)
    # values in [0, 1] are shown as they are
    np.testing.assert_allclose(px[..., :3], np.round(rgb * 255), atol=1)
    out = page.evaluate(js, base64.b64encode(encode_frame(scalar, step=1, x0=0, y0=0, viz_index=0)).decode())
    px = np.array(out["px"]).reshape(2, 2, 4)
    assert out["c"] == 1
    # the scalar colour map is monotone in brightness: min darkest, max brightest
    lum = px[..., :3].sum(axis=2)
    assert lum[0, 0] < lum[0, 1] < lum[1, 0] < lum[1, 1]

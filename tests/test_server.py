"""The live server (atheria_core.server): a real server subprocess on 127.0.0.1 driven
by aiohttp's HTTP and WebSocket client, plus unit tests of the wire format."""
from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp")

from atheria_core.server import protocol as P  # noqa: E402

from _serverproc import ServerProc  # noqa: E402

EXP = "DEMO_LOCAL_CONV"


# --------------------------------------------------------------------------- wire format
def test_frame_header_layout_and_roundtrip():
    data = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    buf = P.encode_frame(data, step=2 ** 40 + 3, x0=7, y0=9, viz_index=2, stride=1, seq=11)
    assert P.FRAME_HEADER_SIZE == 48
    assert len(buf) == 48 + 12 * 4
    assert buf[:4] == b"ATHF" and buf[4] == 1 and buf[5] == 1 and buf[6] == 2
    # the documented offsets, read independently of decode_frame
    assert int.from_bytes(buf[8:16], "little") == 2 ** 40 + 3
    assert int.from_bytes(buf[16:20], "little") == 7 and int.from_bytes(buf[20:24], "little") == 9
    assert int.from_bytes(buf[24:28], "little") == 4 and int.from_bytes(buf[28:32], "little") == 3
    assert np.frombuffer(buf[32:40], "<f4").tolist() == [-5.5, 5.5]
    np.testing.assert_array_equal(np.frombuffer(buf, "<f4", offset=48).reshape(3, 4), data)
    f = P.decode_frame(buf)
    assert (f["width"], f["height"], f["channels"], f["seq"]) == (4, 3, 1, 11)

    rgb = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    f = P.decode_frame(P.encode_frame(rgb, step=1, x0=0, y0=0, viz_index=0))
    assert f["channels"] == 3 and f["data"].shape == (5, 6, 3)
    np.testing.assert_array_equal(f["data"], rgb)
    with pytest.raises(ValueError):
        P.encode_frame(np.zeros((2, 2, 2)), step=0, x0=0, y0=0, viz_index=0)
    with pytest.raises(ValueError):
        P.decode_frame(buf[:-4])


def test_as_frame_array_shapes():
    scalar = np.zeros((4, 6), np.float32)
    rgb = np.zeros((4, 6, 3), np.float32)
    layered = np.arange(5 * 4 * 6, dtype=np.float32).reshape(5, 4, 6)
    assert P.as_frame_array(scalar) is scalar and P.as_frame_array(rgb) is rgb
    np.testing.assert_array_equal(P.as_frame_array(layered, 2), layered[2])
    np.testing.assert_array_equal(P.as_frame_array(layered, 9), layered[4])
    with pytest.raises(ValueError):
        P.as_frame_array(np.zeros((2, 2, 2, 2)))


CTX = dict(experiments=["A", "B"], grid_size=32, viz_types=["density", "phase"], d_state=4)


@pytest.mark.parametrize("msg", [
    {}, {"action": "fly"}, {"action": 3}, {"action": "play", "extra": 1},
    {"action": "step", "n": 0}, {"action": "step", "n": 10 ** 6}, {"action": "step", "n": 1.5},
    {"action": "step", "n": True}, {"action": "load"}, {"action": "load", "experiment": "../A"},
    {"action": "load", "experiment": "C"}, {"action": "load", "experiment": "A", "engine": "gpu"},
    {"action": "engine", "engine": None}, {"action": "tool", "tool": "laser"},
    {"action": "tool", "tool": "wave", "params": {"x": 40}},
    {"action": "tool", "tool": "wave", "params": {"x": float("nan")}},
    {"action": "tool", "tool": "wave", "params": {"color": 1}},
    {"action": "tool", "tool": "collapse", "params": {"strength": 2}},
    {"action": "tool", "tool": "wave", "params": {"radius": 0}},
    {"action": "tool", "tool": "wave", "params": [1, 2]},
    {"action": "view", "viz": "smell"}, {"action": "view", "roi": [0, 0, 33, 10]},
    {"action": "view", "roi": [5, 5, 5, 6]}, {"action": "view", "roi": [0, 0, 1]},
    {"action": "view", "channel": 4}, {"action": "play", "id": [1]},
    {"action": "snapshot_load", "name": "../etc"},
])
def test_parse_control_rejects(msg):
    with pytest.raises(P.ProtocolError):
        P.parse_control(msg, **CTX)


def test_parse_control_accepts():
    c = P.parse_control({"action": "tool", "tool": "vortex", "params": {"x": 3, "y": 4.5, "strength": 2}, "id": 7},
                        **CTX)
    assert (c.action, c.args["tool"], c.args["params"], c.id) == ("tool", "vortex", {"x": 3.0, "y": 4.5,
                                                                                     "strength": 2.0}, 7)
    assert P.parse_control({"action": "step"}, **CTX).args == {"n": 1}
    v = P.parse_control({"action": "view", "viz": "phase", "roi": [1, 2, 3, 4], "channel": 3}, **CTX).args["view"]
    assert v == P.View("phase", (1, 2, 3, 4), 3)


@pytest.mark.parametrize("text", ["{", "[]", "\"play\"", "{\"action\": NaN}", b"\xff\xfe", "x" * (P.MAX_MESSAGE_BYTES + 1)])
def test_parse_json_message_rejects(text):
    with pytest.raises(P.ProtocolError):
        P.parse_json_message(text)


# --------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def server(demo_root):
    srv = ServerProc(demo_root, "--experiment", EXP, "--max-steps-per-s", "200", "--max-fps", "20")
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _get(url):
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            return r.status, await r.json()


async def _post(url, body):
    async with aiohttp.ClientSession() as s:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        async with s.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.json()


def control(server, body):
    return run(_post(server.url + "/api/control", body))


def status(server):
    code, st = run(_get(server.url + "/api/status"))
    assert code == 200
    return st


def test_status_reports_native_engine_and_log_line(server, demo_root):
    code, exps = run(_get(server.url + "/api/experiments"))
    assert code == 200
    on_disk = sorted(n for n in os.listdir(os.path.join(demo_root, "experiments"))
                     if os.path.isfile(os.path.join(demo_root, "experiments", n, "config.json")))
    assert exps["experiments"] == on_disk and exps["current"] == EXP
    st = status(server)
    assert st["experiment"] == EXP and st["engine"] == "native" and st["fallback_reason"] is None
    assert st["model_route"] == "builtin-conv" and st["engine_kind"] in ("dense", "sparse")
    assert st["grid_size"] == 32 and st["d_state"] == 4 and st["worker_alive"]
    assert {"density", "phase", "energy"} <= set(st["viz_types"])
    for key in ("step", "fps", "ms_per_step", "matter_count", "running"):
        assert key in st
    assert server.wait_log(r"Native engine \(C\) loaded"), server.log


def test_step_play_pause(server):
    control(server, {"action": "pause"})
    s0 = status(server)["step"]
    code, r = control(server, {"action": "step", "n": 3})
    assert code == 200 and r["type"] == "ok" and r["result"]["step"] == s0 + 3
    code, r = control(server, {"action": "play"})
    assert code == 200 and r["status"]["running"]
    deadline = time.monotonic() + 20
    while status(server)["step"] < s0 + 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    st = status(server)
    assert st["step"] >= s0 + 20 and st["running"]
    code, r = control(server, {"action": "pause"})
    paused_at = r["result"]["step"]
    # the worker answers between steps: nothing runs after the reply
    time.sleep(0.4)
    st = status(server)
    assert st["step"] == paused_at and not st["running"]
    assert st["fps"] >= 0 and st["ms_per_step"] > 0


async def _ws_frames(url, n, view=None, until=None):
    """Connects, optionally sets a view, returns (hello, [decoded frames])."""
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url + "/ws") as ws:
            hello = json.loads((await ws.receive(timeout=10)).data)
            if view is not None:
                await ws.send_str(json.dumps(view))
            frames = []
            while len(frames) < n:
                msg = await ws.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.BINARY:
                    f = P.decode_frame(msg.data)
                    if until is None or until(f):
                        frames.append(f)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    m = json.loads(msg.data)
                    assert m["type"] != "error", m
                else:
                    raise AssertionError(f"unexpected {msg.type}")
            return hello, frames


def test_ws_frames_density_phase_and_roi(server):
    control(server, {"action": "pause"})
    control(server, {"action": "step", "n": 2})
    step = status(server)["step"]
    hello, frames = run(_ws_frames(server.url, 1))
    assert hello["type"] == "hello" and hello["status"]["experiment"] == EXP
    f = frames[0]
    assert (f["width"], f["height"], f["channels"], f["x0"], f["y0"], f["step"]) == (32, 32, 1, 0, 0, step)
    # the engine normalises every cell (DESIGN §3.3): density = sum_k |psi_k|^2 = 1
    np.testing.assert_allclose(f["data"], 1.0, atol=1e-4)

    names = hello["status"]["viz_types"]
    _, (full,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "phase"},
                                until=lambda fr: fr["viz_index"] == names.index("phase")))
    assert full["width"] == 32 and np.all(np.abs(full["data"]) <= math.pi + 1e-6)
    assert float(full["data"].std()) > 0.01
    roi = [4, 8, 20, 28]
    _, (part,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "phase", "roi": roi},
                                until=lambda fr: fr["x0"] == 4))
    assert (part["x0"], part["y0"], part["width"], part["height"]) == (4, 8, 16, 20)
    assert part["step"] == full["step"] == step
    # the region is the same cells as the whole-grid frame: only the visible part was sent
    np.testing.assert_allclose(part["data"], full["data"][8:28, 4:20], atol=1e-6)


def test_parse_view_channel_bounds():
    """The view's channel is a state channel, except for holographic_bulk where it picks one
    of the stack's 5 layers (whatever d_state is)."""
    types = ["density", "holographic_bulk"]
    assert P.parse_view({"viz": "holographic_bulk", "channel": 4}, types, 32, 2).channel == 4
    assert P.parse_view({"viz": "density", "channel": 1}, types, 32, 2).channel == 1
    for viz, bad in (("holographic_bulk", 5), ("density", 2)):
        with pytest.raises(P.ProtocolError):
            P.parse_view({"viz": viz, "channel": bad}, types, 32, 2)


def test_ws_holographic_bulk_layers(server):
    """Each layer of the bulk stack reaches the client: layer 0 is the density map, the last
    layer is four blurs of it (zero padding darkens the border, the interior stays ~1)."""
    control(server, {"action": "pause"})
    control(server, {"action": "step", "n": 2})
    names = status(server)["viz_types"]
    assert "holographic_bulk" in names
    idx = names.index("holographic_bulk")
    layers = []
    for layer in (0, 4):
        _, (fr,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "holographic_bulk", "channel": layer},
                                  until=lambda f: f["viz_index"] == idx))
        assert fr["channels"] == 1 and (fr["width"], fr["height"]) == (32, 32)
        layers.append(fr["data"])
    # after a step every cell is normalised (density 1); four blurs keep the interior and
    # darken the corner by the zero padding (one blur alone gives 9/16 there)
    np.testing.assert_allclose(layers[0], 1.0, atol=1e-4)
    assert float(layers[1][0, 0]) < 9 / 16
    np.testing.assert_allclose(layers[1][8:24, 8:24], 1.0, atol=1e-4)


def test_tool_changes_only_the_disc(server):
    control(server, {"action": "pause"})
    names = status(server)["viz_types"]
    is_phase = lambda fr: fr["viz_index"] == names.index("phase")  # noqa: E731
    _, (before,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "phase"}, until=is_phase))
    code, r = control(server, {"action": "tool", "tool": "vortex", "params": {"x": 16, "y": 16, "radius": 5,
                                                                             "strength": 1}})
    assert code == 200, r
    _, (after,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "phase"}, until=is_phase))
    assert after["step"] == before["step"]
    yy, xx = np.mgrid[0:32, 0:32]
    inside = (xx - 16) ** 2 + (yy - 16) ** 2 <= 25
    np.testing.assert_array_equal(after["data"][~inside], before["data"][~inside])
    # a winding-1 vortex adds atan2(y-16, x-16) to the phase (mod 2 pi)
    added = np.angle(np.exp(1j * (after["data"] - before["data"])))
    expect = np.angle(np.exp(1j * np.arctan2(yy - 16, xx - 16)))
    diff = np.angle(np.exp(1j * (added - expect)))[inside]
    assert np.max(np.abs(diff)) < 1e-3


async def _ws_bad_messages(url):
    bad = ["{", "[1, 2]", json.dumps({"action": "fly"}), json.dumps({"action": "step", "n": -1}),
           json.dumps({"action": "load", "experiment": "../../etc"}),
           json.dumps({"action": "load", "experiment": "/etc/passwd"}),
           json.dumps({"action": "view", "roi": [0, 0, 99, 99]}),
           json.dumps({"action": "tool", "tool": "collapse", "params": {"strength": 5}}),
           json.dumps({"action": "play", "pad": "x" * (P.MAX_MESSAGE_BYTES + 10)})]
    replies = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url + "/ws") as ws:
            for i, text in enumerate(bad):
                await ws.send_str(text)
                replies.append(await _next_text(ws))
            await ws.send_bytes(b"\x00\x01\x02")
            replies.append(await _next_text(ws))
            await ws.send_str(json.dumps({"action": "status-please", "id": 42}))
            replies.append(await _next_text(ws))
    return replies


async def _next_text(ws):
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            m = json.loads(msg.data)
            if m["type"] in ("ok", "error"):
                return m
        elif msg.type != aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"connection ended: {msg.type}")


def test_bad_messages_get_errors_and_change_nothing(server):
    control(server, {"action": "pause"})
    before = status(server)
    replies = run(_ws_bad_messages(server.url))
    assert [r["type"] for r in replies] == ["error"] * len(replies), replies
    assert replies[-1]["id"] == 42
    for body in (b"{", b"[]", json.dumps({"action": "load", "experiment": ".."}).encode(),
                 json.dumps({"action": "view"}).encode(), b"x" * (P.MAX_MESSAGE_BYTES + 100)):
        code, r = control(server, body)
        assert code == 400 and r["type"] == "error", r
    after = status(server)
    for key in ("experiment", "step", "engine", "running", "grid_size"):
        assert after[key] == before[key], key


def test_engine_switch_and_load(server):
    control(server, {"action": "pause"})
    s0 = status(server)["step"]
    code, r = control(server, {"action": "engine", "engine": "python"})
    assert code == 200, r
    st = r["status"]
    assert st["engine"] == "python" and st["fallback_reason"] == "Python engine requested"
    assert st["experiment"] == EXP and st["step"] == s0  # the field and the step count carry over
    control(server, {"action": "step", "n": 2})
    assert status(server)["step"] == s0 + 2
    assert server.wait_log(r"engine: python \(AetheriaMotor\) for DEMO_LOCAL_CONV")
    code, r = control(server, {"action": "engine", "engine": "native"})
    assert code == 200 and r["status"]["engine"] == "native"

    code, r = control(server, {"action": "load", "experiment": "DEMO_UNET"})
    assert code == 200, r
    assert r["status"]["experiment"] == "DEMO_UNET" and r["status"]["step"] == 0
    assert r["status"]["engine"] == "native" and r["status"]["model_route"] in ("torchscript-shim", "torchscript-python", "aoti-shim", "aoti-python")
    code, r = control(server, {"action": "load", "experiment": EXP})
    assert code == 200 and r["status"]["experiment"] == EXP


def test_reset_returns_to_step_zero(server):
    control(server, {"action": "step", "n": 4})
    code, r = control(server, {"action": "reset"})
    assert code == 200 and r["status"]["step"] == 0 and not r["status"]["running"]


# --------------------------------------------------------------------------- process lifecycle
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_clean_shutdown_on_signal(demo_root, sig):
    srv = ServerProc(demo_root, "--experiment", EXP, "--play", "--max-steps-per-s", "100")

    async def connect_then_wait_close():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(srv.url + "/ws") as ws:
                await ws.receive(timeout=10)
                srv.proc.send_signal(sig)
                while True:
                    msg = await ws.receive(timeout=15)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        return ws.close_code

    try:
        assert srv.wait_log(r"engine: native")
        code = run(connect_then_wait_close())
        assert code == 1001
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
    assert srv.wait_log(rf"{sig.name} received: shutting down", 1) and srv.wait_log("server stopped", 1), srv.log


def test_unknown_experiment_at_start_exits_2(demo_root):
    import subprocess
    import sys

    for name in ("../experiments/DEMO_UNET", "NO_SUCH_EXPERIMENT"):
        run_ = subprocess.run([sys.executable, "-m", "atheria_core.server", "--root", demo_root, "--port", "0",
                               "--experiment", name], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(P.__file__), "..", "..")))
        assert run_.returncode == 2 and "not found" in run_.stderr, run_.stderr


def test_cli_defaults_bind_loopback():
    from atheria_core.server.cli import build_parser
    a = build_parser().parse_args([])
    assert a.host == "127.0.0.1" and a.engine == "native"


# --------------------------------------------------------------------------- snapshots, history, analysis
def _phase_frame(server):
    names = status(server)["viz_types"]
    _, (f,) = run(_ws_frames(server.url, 1, {"action": "view", "viz": "phase"},
                             until=lambda fr: fr["viz_index"] == names.index("phase")))
    return f


def test_snapshot_save_load_rewind_and_undo_a_tool(server):
    control(server, {"action": "pause"})
    control(server, {"action": "reset"})
    control(server, {"action": "step", "n": 5})
    f5 = _phase_frame(server)
    assert f5["step"] == 5
    code, r = control(server, {"action": "snapshot_save"})
    assert code == 200, r
    name = r["result"]["snapshot"]
    assert name in r["status"]["snapshots"]

    control(server, {"action": "step", "n": 7})
    f12 = _phase_frame(server)
    assert f12["step"] == 12 and not np.array_equal(f12["data"], f5["data"])
    code, r = control(server, {"action": "snapshot_load", "name": name})
    assert code == 200 and r["status"]["step"] == 5, r
    np.testing.assert_array_equal(_phase_frame(server)["data"], f5["data"])

    # history: the state at load (step 5) and every 10th step are kept
    control(server, {"action": "step", "n": 7})
    code, r = control(server, {"action": "rewind"})
    assert code == 200 and r["status"]["step"] == 10, r
    code, r = control(server, {"action": "rewind"})
    assert code == 200 and r["status"]["step"] == 5, r
    np.testing.assert_array_equal(_phase_frame(server)["data"], f5["data"])
    code, r = control(server, {"action": "rewind"})
    assert code == 409 and r["type"] == "error" and "history" in r["error"]
    assert status(server)["step"] == 5

    # a tool is undone by one rewind
    control(server, {"action": "tool", "tool": "vortex", "params": {"x": 10, "y": 10, "radius": 6}})
    assert not np.array_equal(_phase_frame(server)["data"], f5["data"])
    code, r = control(server, {"action": "rewind"})
    assert code == 200 and r["status"]["step"] == 5
    np.testing.assert_array_equal(_phase_frame(server)["data"], f5["data"])

    # errors change nothing: an unknown snapshot, and a native snapshot on the Python engine
    code, r = control(server, {"action": "snapshot_load", "name": "no_such_snapshot"})
    assert code == 409 and "no snapshot" in r["error"]
    control(server, {"action": "engine", "engine": "python"})
    before = status(server)
    code, r = control(server, {"action": "snapshot_load", "name": name})
    assert code == 409 and r["type"] == "error", r
    after = status(server)
    assert (after["engine"], after["step"]) == (before["engine"], before["step"]) == ("python", 5)
    code, r = control(server, {"action": "engine", "engine": "native"})
    assert code == 200 and r["status"]["engine"] == "native"


async def _analysis_points(url, n):
    pts = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url + "/ws") as ws:
            while len(pts) < n:
                msg = await ws.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    m = json.loads(msg.data)
                    if m["type"] in ("hello", "status"):
                        pts += m["analysis"]
    return pts


def test_analysis_series_over_websocket(server):
    control(server, {"action": "reset"})
    control(server, {"action": "play"})
    try:
        pts = run(_analysis_points(server.url, 3))
    finally:
        control(server, {"action": "pause"})
    assert status(server)["features"]["analysis"]
    steps = [p["step"] for p in pts]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert any(p["step"] > 0 for p in pts)
    for p in pts:
        # a step normalises every cell (DESIGN §3.3), so energy = sum_c sum_k |psi|^2 = the cell
        # count; the vacuum at step 0 has |psi_k| = 1 in each of the 4 channels (DESIGN §3.2)
        assert p["energy"] == pytest.approx(32 * 32 * (4 if p["step"] == 0 else 1), rel=1e-4)
        assert 0.0 <= p["coherence"] <= 1.0 + 1e-9
        assert p["matter"] == 32 * 32


def test_console_script_and_package_data_declared():
    tomllib = pytest.importorskip("tomllib")
    import importlib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        proj = tomllib.load(fh)["project"]
    mod, func = proj["scripts"]["atheria-serve"].split(":")
    assert callable(getattr(importlib.import_module(mod), func))
    assert any(dep.startswith("aiohttp") for dep in proj["optional-dependencies"]["server"])
    from atheria_core.server.app import STATIC_DIR
    assert sorted(os.listdir(STATIC_DIR)) == ["index.html", "viewer.css", "viewer.js"]
    with open(os.path.join(root, "setup.py")) as fh:
        setup_py = fh.read()
    for pattern in ("static/*.html", "static/*.js", "static/*.css"):
        assert pattern in setup_py

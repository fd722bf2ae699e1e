"""Snapshots (docs/snapshots.md): in-memory restore, the file format and its errors, exact resume
in a new process, History, ROIManager, ROI matter views and the analysis numbers."""
from __future__ import annotations

import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

import atheria_core
from atheria_core import ROIManager, Snapshot, SnapshotError, History
from atheria_core._engines import engine_types
from atheria_core.snapshot import FORMAT_VERSION, MAGIC, read_snapshot_file, write_snapshot_file

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def api(ac):
    """The backend with the public Engine / DenseEngine types (snapshots, roi, analysis)."""
    eng, dense = engine_types(ac)
    return types.SimpleNamespace(Engine=eng, DenseEngine=dense, ZeroModel=ac.ZeroModel, ConvModel=ac.ConvModel,
                                 backend=ac)


def conv(api, d=2, seed=1):
    rng = np.random.default_rng(seed)
    return api.ConvModel([(rng.standard_normal((2 * d, 2 * d, 3, 3)) * 0.2).astype(np.float32)], None,
                         activation="identity")


def blob(d=2, seed=2, n=6):
    rng = np.random.default_rng(seed)
    coords = np.array([[x, y, 0] for y in range(3, 3 + n) for x in range(2, 2 + n)], dtype=np.int64)
    return coords, (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d))
                    ).astype(np.complex64)


def sorted_matter(e):
    c, s = e.matter()
    o = np.lexsort((c[:, 2], c[:, 1], c[:, 0]))
    return c[o], s[o]


# ----------------------------------------------------------------- in memory
@pytest.mark.parametrize("background", ["vacuum", "zero"])
@pytest.mark.parametrize("extent", [None, "zero", "periodic"])
def test_sparse_restore_is_exact(api, background, extent):
    e = api.Engine(2, grid_size=10, background=background, extent=extent, threshold=0.01, seed=4)
    e.set_model(conv(api))
    e.add_particles(*blob())
    e.step(4)
    snap = e.snapshot()
    e.step(4)
    ref = sorted_matter(e)
    assert e.get_step_count() == 8
    e.restore(snap)
    assert e.get_step_count() == 4
    e.step(4)
    got = sorted_matter(e)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])


@pytest.mark.parametrize("extent", ["zero", "periodic"])
def test_dense_restore_is_exact(api, extent):
    e = api.DenseEngine(9, 2, extent=extent, seed=3)
    e.set_model(conv(api))
    e.step(3)
    snap = e.snapshot()
    e.step(3)
    ref = e.get_state()
    e.restore(snap)
    assert e.get_step_count() == 3
    e.step(3)
    assert np.array_equal(ref, e.get_state())


def test_snapshot_is_a_copy(api):
    e = api.Engine(2, background="zero")
    e.add_particles(*blob())
    snap = e.snapshot()
    e.clear()
    assert len(snap.arrays["coords"]) == 36 and e.get_matter_count() == 0


def test_snapshot_holds_options_step_and_model(api):
    e = api.Engine(3, grid_size=7, background="zero", extent="periodic", threshold=0.5, gamma_decay=0.25,
                   unitary=True, seed=99, vacuum_strength=0.3, patch=5)
    e.set_model(api.ZeroModel())
    snap = e.snapshot()
    assert snap.engine == "Engine"
    assert snap.meta["options"] == {"d_state": 3, "device": "cpu", "grid_size": 7, "background": "zero",
                                    "extent": "periodic", "threshold": 0.5, "gamma_decay": 0.25, "unitary": True,
                                    "seed": 99, "vacuum_strength": 0.3, "patch": 5}
    assert snap.meta["model"] == {"type": "zero"}


def test_restore_refuses_other_engines_and_options(api):
    e = api.Engine(2, background="zero")
    e.add_particles(*blob())
    d = api.DenseEngine(8, 2)
    with pytest.raises(SnapshotError, match="Engine"):
        d.restore(e.snapshot())
    other = api.Engine(2, background="vacuum")
    other.add_particle((0, 0, 0), [1, 0])
    with pytest.raises(SnapshotError, match="background"):
        other.restore(e.snapshot())
    assert other.get_matter_count() == 1  # unchanged
    with pytest.raises(TypeError):
        e.restore("not a snapshot")


# ----------------------------------------------------------------- files
def test_file_round_trip_rebuilds_the_engine(api, tmp_path):
    e = api.Engine(2, grid_size=10, background="zero", extent="zero", threshold=0.0, seed=8)
    m = conv(api)
    e.set_model(m)
    e.add_particles(*blob())
    e.step(3)
    path = e.save_snapshot(tmp_path / "e.snap")
    assert os.listdir(tmp_path) == ["e.snap"]   # the temporary file is gone
    snap = read_snapshot_file(path)
    assert snap.meta["model"]["type"] == "conv"
    from atheria_core._engines import engine_from_snapshot
    import atheria_core._engines as eng_mod
    orig = eng_mod._backend_module
    eng_mod._backend_module = lambda: api.backend   # rebuild with the backend under test
    try:
        e2 = engine_from_snapshot(snap, source=str(path))
    finally:
        eng_mod._backend_module = orig
    assert e2.get_step_count() == 3 and e2.has_model()
    e.step(2)
    e2.step(2)
    a, b = sorted_matter(e), sorted_matter(e2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bytes_are_stable():
    snap = Snapshot({"engine": "Engine", "step": 3, "options": {"a": 1}},
                    {"x": np.arange(6, dtype=np.int64).reshape(2, 3), "s": np.ones(2, np.complex64)})
    raw = snap.to_bytes()
    assert raw[:8] == MAGIC
    back = Snapshot.from_bytes(raw)
    assert back.meta == snap.meta and back.to_bytes() == raw
    assert np.array_equal(back.arrays["x"], snap.arrays["x"]) and back.arrays["s"].dtype == np.complex64


def _valid_file(tmp_path):
    e = atheria_core.Engine(2, background="zero")
    e.add_particles(*blob())
    return e.save_snapshot(tmp_path / "ok.snap")


@pytest.mark.parametrize("damage,kind", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:5], "truncated"),
    (lambda b: b"", "foreign"),
    (lambda b: b"PK\x03\x04" + b[4:], "foreign"),
    (lambda b: b[:40] + bytes([b[40] ^ 0x55]) + b[41:], "corrupt"),
    (lambda b: b + b"x", "corrupt"),
    (lambda b: b[:8] + (FORMAT_VERSION + 1).to_bytes(4, "little") + b[12:], "newer"),
])
def test_bad_files_raise_snapshot_error(tmp_path, damage, kind):
    good = _valid_file(tmp_path)
    raw = open(good, "rb").read()
    bad = tmp_path / "bad.snap"
    bad.write_bytes(damage(raw))
    with pytest.raises(SnapshotError) as info:
        atheria_core.load_snapshot(bad)
    assert info.value.kind == kind
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(SnapshotError, match="cannot read") as info:
        atheria_core.load_snapshot(tmp_path / "nope.snap")
    assert info.value.kind == "io"


def test_failed_write_keeps_the_old_file(tmp_path):
    good = _valid_file(tmp_path)
    before = open(good, "rb").read()

    class Boom(Snapshot):
        def to_bytes(self):  # noqa: D401 - a write that fails half-way
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        write_snapshot_file(good, Boom({"engine": "Engine", "step": 0}))
    assert open(good, "rb").read() == before and os.listdir(tmp_path) == ["ok.snap"]


def test_callable_model_is_not_saved_and_the_loader_warns(tmp_path):
    e = atheria_core.Engine(2, background="zero", threshold=0.0)
    e.set_model(lambda batch: np.zeros_like(batch))
    e.add_particles(*blob())
    e.step(1)
    path = e.save_snapshot(tmp_path / "c.snap")
    with pytest.warns(RuntimeWarning, match="callable"):
        e2 = atheria_core.load_snapshot(path)
    assert not e2.has_model() and e2.get_step_count() == 1
    e3 = atheria_core.load_snapshot(path, model=lambda batch: np.zeros_like(batch))
    assert e3.has_model()


def test_file_model_reloaded_only_when_unchanged(tmp_path, demo_root):
    import shutil
    src = os.path.join(demo_root, "training_checkpoints", "DEMO_LOCAL_CONV", "checkpoint_ep3.jit.pt")
    model = tmp_path / "m.pt"
    shutil.copy(src, model)
    e = atheria_core.DenseEngine(8, 4)
    assert e.load_model(str(model))
    e.step(1)
    path = e.save_snapshot(tmp_path / "f.snap")
    assert read_snapshot_file(path).meta["model"]["type"] == "file"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert atheria_core.load_snapshot(path).has_model()
    with open(model, "ab") as f:
        f.write(b"changed")
    with pytest.warns(RuntimeWarning, match="sha256"):
        assert not atheria_core.load_snapshot(path).has_model()


# ----------------------------------------------------------------- exact resume, new process
def _worker(mode, demo_root, out, env_extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(os.path.dirname(HERE), "python")
    env.update(env_extra)
    run = subprocess.run([sys.executable, os.path.join(HERE, "_resume_worker.py"), mode, demo_root, str(out)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    import json
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("route", ["c", "c-python-route", "python"])
def test_resume_in_a_new_process_is_bit_identical(tmp_path, demo_root, route):
    """20 steps == 10 steps, save, load in a new process, 10 more: every engine, background and
    extent, every demo architecture (ConvLSTM included), the wrapper and the motor."""
    env = {"c": {}, "c-python-route": {"ATHERIA_NO_SHIM": "1"}, "python": {"ATHERIA_FORCE_PYTHON": "1"}}[route]
    names = _worker("make", demo_root, tmp_path, env)
    assert _worker("resume", demo_root, tmp_path, env) == names
    assert any("CONVLSTM" in n for n in names) and len(names) >= 15
    for name in names:
        a = np.load(tmp_path / f"{name}.make.npz")
        b = np.load(tmp_path / f"{name}.resume.npz")
        assert int(a["step"]) == int(b["step"]) == 20, name
        for k in a.files:
            assert np.array_equal(a[k], b[k]), f"{name}: {k} differs by {np.max(np.abs(a[k] - b[k]))}"


def test_convlstm_memory_is_part_of_the_snapshot(demo_root):
    """Restoring the field without the memory would give another trajectory."""
    from atheria_core.wrapper import NativeEngineWrapper
    path = os.path.join(demo_root, "training_checkpoints", "DEMO_UNET_CONVLSTM", "checkpoint_ep3.jit.pt")
    w = NativeEngineWrapper(16, 4, engine="dense")
    assert w.load_model(path)
    w.evolve_step(5)
    snap = w.snapshot()
    assert snap.meta["inner"]["memory"] is not None
    w.evolve_step(5)
    ref = w.get_dense_state()
    w.restore(snap)
    w.evolve_step(5)
    assert np.array_equal(ref, w.get_dense_state())
    inner = Snapshot({**snap.meta["inner"], "memory": None}, snap.arrays)
    w.engine.restore(inner)
    w.evolve_step(5)
    assert not np.array_equal(ref, w.get_dense_state())


def test_c_file_loads_in_the_fallback(tmp_path):
    """One format: a file written by the C backend resumes in the pure-Python backend."""
    if atheria_core.BACKEND != "c":
        pytest.skip("needs the C backend")
    e = atheria_core.Engine(2, grid_size=10, background="vacuum", extent="zero", seed=6)
    e.set_model(atheria_core.ConvModel([np.full((4, 4, 3, 3), 0.02, np.float32)]))
    e.add_particles(*blob())
    e.step(3)
    path = e.save_snapshot(tmp_path / "x.snap")
    e.step(3)
    code = ("import sys, numpy as np, atheria_core as ac; assert ac.BACKEND == 'python'; "
            "e = ac.load_snapshot(sys.argv[1]); e.step(3); c, s = e.matter(); "
            "o = np.lexsort((c[:, 1], c[:, 0])); np.savez(sys.argv[2], c=c[o], s=s[o], n=e.get_step_count())")
    env = dict(os.environ, ATHERIA_FORCE_PYTHON="1", PYTHONPATH=os.path.join(os.path.dirname(HERE), "python"))
    run = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "r.npz")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    r = np.load(tmp_path / "r.npz")
    c, s = sorted_matter(e)
    assert int(r["n"]) == 6 and np.array_equal(r["c"], c)
    np.testing.assert_allclose(r["s"], s, atol=1e-5, rtol=0)   # backends agree to float32 rounding


# ----------------------------------------------------------------- History
def test_history_is_bounded_and_rewinds(api):
    e = api.DenseEngine(8, 2)
    e.set_model(conv(api))
    one = e.snapshot().nbytes
    h = History(e, max_bytes=3 * one + 10)
    fields = {}
    for _ in range(6):
        fields[h.push()] = e.get_state()
        e.step(1)
    assert len(h) == 3 and h.steps == [3, 4, 5] and h.nbytes <= 3 * one + 10
    assert h.rewind(2) == 4
    assert e.get_step_count() == 4 and np.array_equal(e.get_state(), fields[4])
    assert h.steps == [3, 4]
    with pytest.raises(IndexError):
        h.rewind(3)
    with pytest.raises(ValueError):
        h.rewind(0)
    with pytest.raises(ValueError):
        History(e, 0)


def test_history_keeps_the_newest_even_when_over_budget(api):
    e = api.Engine(2, background="zero")
    e.add_particles(*blob())
    h = History(e, max_bytes=1)
    h.push()
    h.push()
    assert len(h) == 1


# ----------------------------------------------------------------- ROIManager
def test_roi_manager():
    r = ROIManager(64)
    assert r.get_roi_info()["reduction_ratio"] == 1.0 and r.roi is None
    r.set_roi(8, 4, 16, 8)
    info = r.get_roi_info()
    assert r.roi == (8, 4, 24, 12) and info["area"] == 128 and info["reduction_ratio"] == 4096 / 128
    for bad in [(60, 0, 8, 8), (-1, 0, 4, 4), (0, 0, 0, 4)]:
        with pytest.raises(ValueError):
            r.set_roi(*bad)
    assert r.roi == (8, 4, 24, 12)
    with pytest.raises(TypeError):
        r.set_roi(1.5, 0, 4, 4)
    r.clear_roi()
    assert r.roi is None


def test_wrapper_visualization_uses_the_roi_manager(demo_root):
    from atheria_core.wrapper import NativeEngineWrapper
    w = NativeEngineWrapper(16, 4, engine="dense")
    assert w.load_model(os.path.join(demo_root, "training_checkpoints", "DEMO_UNET", "checkpoint_ep3.jit.pt"))
    full = w.get_visualization_data("density")["data"]
    w.roi_manager.set_roi(2, 3, 5, 4)
    part = w.get_visualization_data("density")
    assert part["shape"] == (4, 5) and part["roi"] == (2, 3, 7, 7)
    np.testing.assert_array_equal(part["data"], full[3:7, 2:7])
    for _ in range(3):
        w.evolve_step(1)
        w.analyze()
    assert [a["step"] for a in w.analysis_history] == [1, 2, 3]
    w.set_analysis_history_length(2)
    w.analyze()
    assert [a["step"] for a in w.analysis_history] == [3, 3]


# ----------------------------------------------------------------- ROI views and analysis
def _numpy_analysis(xy, states):
    """Independent reference of the analysis definitions (atheria_core.analysis)."""
    p = np.abs(states.astype(np.complex128)) ** 2
    e = p.sum(axis=1)
    z = states[:, 0].astype(np.complex128)
    nz = np.abs(z) > 0
    m = np.mean(z[nz] / np.abs(z[nz])) if nz.any() else 0j
    counts, edges = np.histogram(e, bins=32, range=(0.0, e.max() if len(e) and e.max() > 0 else 1.0))
    bbox = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max() + 1, xy[:, 1].max() + 1) if len(xy) else None
    return {"energy": e.sum(), "matter_count": len(e), "bbox": bbox, "channel_energy": p.sum(axis=0),
            "mean_phase": np.angle(m) if nz.any() else 0.0, "phase_coherence": abs(m), "counts": counts,
            "edges": edges}


def _check(res, ref):
    n = max(ref["matter_count"], 1)
    tol = 1e-12 * n * max(1.0, ref["energy"])
    assert res["matter_count"] == ref["matter_count"]
    assert res["bbox"] == (None if ref["bbox"] is None else tuple(int(v) for v in ref["bbox"]))
    assert abs(res["energy"] - ref["energy"]) <= tol
    np.testing.assert_allclose(res["channel_energy"], ref["channel_energy"], atol=tol, rtol=0)
    assert abs(res["phase_coherence"] - ref["phase_coherence"]) <= 1e-12 * n
    if ref["phase_coherence"] > 1e-6:
        assert abs(res["mean_phase"] - ref["mean_phase"]) <= 1e-9
    np.testing.assert_allclose(res["energy_histogram"]["edges"], ref["edges"], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(res["energy_histogram"]["counts"], ref["counts"])


@pytest.mark.parametrize("roi", [None, (3, 4, 6, 7), (0, 0, 2, 2), (100, 100, 110, 120)])
def test_sparse_analysis_matches_numpy(api, roi):
    rng = np.random.default_rng(5)
    coords = np.unique(rng.integers(-20, 20, size=(300, 3)) * [1, 1, 0], axis=0)
    coords[::7, 2] = 1   # a second plane
    states = (rng.standard_normal((len(coords), 3)) + 1j * rng.standard_normal((len(coords), 3))).astype(np.complex64)
    states[::5, 0] = 0   # cells without a phase
    e = api.Engine(3, background="zero")
    e.add_particles(coords, states)
    c, s = e.matter_in_roi(roi)
    if roi is None:
        sel = np.ones(len(coords), bool)
    else:
        x0, y0, x1, y1 = roi
        sel = (coords[:, 2] == 0) & (coords[:, 0] >= x0) & (coords[:, 0] < x1) & (coords[:, 1] >= y0) & (coords[:, 1] < y1)
    assert len(c) == sel.sum()
    _check(e.analyze(roi), _numpy_analysis(coords[sel, :2], states[sel]))


@pytest.mark.parametrize("roi", [None, (1, 2, 5, 7)])
def test_dense_analysis_matches_numpy(api, roi):
    e = api.DenseEngine(9, 2, seed=4)
    f = e.get_state()
    x0, y0, x1, y1 = roi or (0, 0, 9, 9)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    ref = _numpy_analysis(np.stack([xs.ravel(), ys.ravel()], 1), f[y0:y1, x0:x1].reshape(-1, 2))
    _check(e.analyze(roi), ref)
    with pytest.raises(ValueError):
        e.analyze((0, 0, 10, 3))
    with pytest.raises(ValueError):
        e.analyze(None, z=1)


def test_analysis_of_nothing(api):
    res = api.Engine(2).analyze()
    assert res["matter_count"] == 0 and res["bbox"] is None and res["energy"] == 0.0
    assert res["phase_coherence"] == 0.0 and res["energy_histogram"]["counts"].sum() == 0


def test_motor_analysis_and_roi_views_agree_with_dense_engine(api):
    from atheria_core.motor import AetheriaMotor
    m = AetheriaMotor(None, 8, 2, seed=2)
    d = api.DenseEngine(8, 2, seed=2)
    roi = (1, 1, 6, 5)
    assert np.array_equal(m.to_dense(roi), d.to_dense(roi))
    a, b = m.analyze(roi), d.analyze(roi)
    assert a["matter_count"] == b["matter_count"] and a["bbox"] == b["bbox"]
    assert abs(a["energy"] - b["energy"]) <= 1e-12 * 20
    np.testing.assert_allclose(m.compute_visualization("phase", roi), d.compute_visualization("phase", roi),
                               atol=1e-6, rtol=0)


def test_sparse_to_dense_default_roi_is_the_window(api):
    e = api.Engine(2, grid_size=6, background="zero")
    e.add_particle((1, 2, 0), [1, 1j])
    full = e.to_dense()
    assert full.shape == (6, 6, 2) and full[2, 1, 1] == 1j
    assert e.compute_visualization("density", (0, 0, 3, 3), z=0).shape == (3, 3)


# ----------------------------------------------------------------- one format, two codecs
def _c_core():
    if atheria_core.BACKEND != "c":
        pytest.skip("needs the C backend")
    return atheria_core._impl


def test_c_and_python_codecs_write_the_same_bytes(tmp_path):
    core = _c_core()
    e = atheria_core.DenseEngine(6, 3, seed=2)
    snap = e.snapshot()
    snap.arrays["ints"] = np.arange(5, dtype=np.int64)
    snap.arrays["empty"] = np.zeros((0, 3), np.float32)
    text, arrays = snap._sections()
    c_bytes = core._snapshot_encode(text, arrays)
    assert c_bytes == snap._py_to_bytes()
    back = Snapshot._py_from_bytes(c_bytes)
    assert back.meta == snap.meta and all(np.array_equal(back.arrays[k], snap.arrays[k]) for k in snap.arrays)


@pytest.mark.parametrize("cut", [0, 3, 8, 23, 24, 100, -13, -1])
def test_c_and_python_codecs_refuse_alike(cut):
    core = _c_core()
    raw = atheria_core.DenseEngine(4, 2).snapshot().to_bytes()
    variants = [raw[:cut], raw[:50] + b"\x00" + raw[51:], raw + b"\x01", b"\x00" * 40]
    for data in variants:
        ok, kind, msg = core._snapshot_decode(data, "x.snap")
        with pytest.raises(SnapshotError) as info:
            Snapshot._py_from_bytes(data, "x.snap")
        assert not ok and kind == info.value.kind and "x.snap" in msg


def test_history_on_the_wrapper_and_the_motor(demo_root):
    from atheria_core.motor import AetheriaMotor
    from atheria_core.wrapper import NativeEngineWrapper
    w = NativeEngineWrapper(16, 4, engine="dense")
    assert w.load_model(os.path.join(demo_root, "training_checkpoints", "DEMO_UNET_CONVLSTM", "checkpoint_ep3.jit.pt"))
    m = AetheriaMotor(None, 8, 2)
    for eng, step in ((w, w.evolve_internal_state), (m, m.evolve_internal_state)):
        h = History(eng, 10 ** 7)
        seen = {}
        for _ in range(4):
            seen[h.push()] = eng.get_dense_state()
            step()
        after = eng.get_dense_state()
        assert h.rewind(3) == 1 and eng.get_step_count() == 1
        assert np.array_equal(eng.get_dense_state(), seen[1])
        for _ in range(3):
            step()
        assert np.array_equal(eng.get_dense_state(), after)   # memory came back too (ConvLSTM)


def test_user_memory_callable_round_trip(api):
    """A Python-callable memory model on the DenseEngine: get_memory() / set_memory(h, c)."""
    class Mem:
        has_memory = True

        def __init__(self):
            self.h = None
            self.pending = None

        def init_memory(self, x):
            return np.zeros_like(x), np.zeros_like(x)

        def __call__(self, x):
            h = self.h if self.h is not None else np.zeros_like(x)
            self.pending = h + 0.01 * x
            return (0.1 * h).astype(np.float32)

        def commit_memory(self):
            self.h, self.pending = self.pending, None

        def discard_memory(self):
            self.pending = None

        def reset_memory(self):
            self.h = self.pending = None

        def get_memory(self):
            return None if self.h is None else (self.h.copy(), self.h.copy())

        def set_memory(self, h, c):
            self.h = np.array(h, dtype=np.float32)

    e = api.DenseEngine(6, 2)
    model = Mem()
    e.set_model(model)
    e.step(3)
    snap = e.snapshot()
    assert snap.meta["memory"] is not None
    e.step(3)
    ref = e.get_state()
    e.restore(snap)
    e.step(3)
    assert np.array_equal(ref, e.get_state())


def test_wrapper_set_state_keeps_the_step_count_on_the_sparse_engine(demo_root):
    from atheria_core.wrapper import NativeEngineWrapper
    w = NativeEngineWrapper(16, 4, engine="sparse")
    assert w.load_model(os.path.join(demo_root, "training_checkpoints", "DEMO_LOCAL_CONV", "checkpoint_ep3.jit.pt"))
    w.evolve_step(3)
    field = w.get_dense_state()
    w.set_state(field)
    assert w.get_step_count() == 3 and np.array_equal(w.get_dense_state(), field)

"""Native engines vs the reference AetheriaMotor on real (quickly trained) demo experiments.

* DenseEngine and AetheriaMotor agree to <= 1e-4 over >= 10 steps, for every
  demo architecture, through the LibTorch shim and through the Python route.
* The sparse Engine (zero background, threshold 0) running the local model
  agrees with AetheriaMotor on a field that is zero outside its matter.
* A TorchScript model through the shim and through the Python route agrees to <= 1e-6.
* The ConvLSTM memory is carried across DenseEngine steps, as in AetheriaMotor.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import atheria_core as ac
from atheria_core import _model_loader, _torch_support
from atheria_core import experiments as exps
from atheria_core.export import export_model_to_jit
from atheria_core.motor import AetheriaMotor

DEMOS = ["DEMO_UNET", "DEMO_UNET_UNITARY", "DEMO_UNET_CONVLSTM", "DEMO_LOCAL_CONV"]
STEPS = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(demo_root: str, name: str):
    exp = exps.load_experiment_config(name, demo_root)
    jit = export_model_to_jit(exp)
    meta = _model_loader.read_metadata(jit)
    model = exps.load_model_from_checkpoint(exp)
    return exp, jit, meta, model


def _routes():
    routes = ["python"]
    if _torch_support.shim_available():
        routes.insert(0, "shim")
    return routes


def _native_model(jit: str, route: str):
    if route == "shim":
        return _torch_support.load_via_shim(jit, "cpu")
    return _model_loader.load_model_for_engine(jit, "cpu")


def test_shim_is_built_here():
    # The suite is run after `pip install --no-build-isolation -e .` with torch present,
    # so the shim must be there; the Python route is tested regardless.
    assert ac.has_torch_shim(), _torch_support.unavailable_reason()


@pytest.mark.parametrize("route", ["shim", "python"])
@pytest.mark.parametrize("name", DEMOS)
def test_dense_engine_matches_motor(demo_root, name, route):
    if route == "shim" and not _torch_support.shim_available():
        pytest.fail(f"LibTorch shim unavailable: {_torch_support.unavailable_reason()}")
    exp, jit, meta, model = _setup(demo_root, name)
    g, d = exp.grid_size_inference, exp.d_state
    motor = AetheriaMotor(model, g, d, "cpu", exp)
    eng = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay, unitary=bool(meta["unitary"]))
    eng.set_model(_native_model(jit, route))
    np.testing.assert_array_equal(eng.get_state(), motor.get_dense_state())
    worst = 0.0
    for _ in range(STEPS):
        eng.step()
        motor.evolve_internal_state()
        worst = max(worst, float(np.max(np.abs(eng.get_state() - motor.get_dense_state()))))
    assert eng.get_step_count() == STEPS
    assert worst <= 1e-4, f"{name} via {route}: max |Δψ| = {worst:.3e}"
    # the field did evolve (the comparison is not between two untouched fields)
    assert float(np.max(np.abs(eng.get_state() - ac.DenseEngine(g, d).get_state()))) > 1e-3


def test_dense_engine_load_model_matches_motor(demo_root):
    """The public load_model path (whichever route it picks) on the U-Net."""
    exp, jit, meta, model = _setup(demo_root, "DEMO_UNET")
    g, d = exp.grid_size_inference, exp.d_state
    eng = ac.DenseEngine(g, d)
    assert eng.load_model(jit), eng.get_last_error()
    motor = AetheriaMotor(model, g, d, "cpu", exp)
    eng.step(STEPS)
    motor.evolve_step(STEPS)
    assert float(np.max(np.abs(eng.get_state() - motor.get_dense_state()))) <= 1e-4


def _blob_field(g: int, d: int, half: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = np.zeros((g, g, d), np.complex64)
    c = g // 2
    blob = rng.standard_normal((2 * half, 2 * half, d)) + 1j * rng.standard_normal((2 * half, 2 * half, d))
    blob /= np.linalg.norm(blob, axis=2, keepdims=True)
    field[c - half:c + half, c - half:c + half] = blob.astype(np.complex64)
    return field


@pytest.mark.parametrize("route", ["shim", "python", "builtin"])
def test_sparse_engine_local_model_matches_motor(demo_root, route):
    if route == "shim" and not _torch_support.shim_available():
        pytest.fail(f"LibTorch shim unavailable: {_torch_support.unavailable_reason()}")
    exp, jit, meta, model = _setup(demo_root, "DEMO_LOCAL_CONV")
    radius = int(meta["receptive_radius"])
    assert meta["zero_preserving"] is True and radius >= 1
    d, g, steps = exp.d_state, 64, 10
    assert 8 + 2 * radius * steps < g, "the blob must not reach the dense grid's edge"
    field = _blob_field(g, d, 4)
    motor = AetheriaMotor(model, g, d, "cpu", exp)
    motor.set_state(field)

    eng = ac.Engine(d, background="zero", threshold=0.0, patch=2 * radius + 1)
    if route == "builtin":
        eng.set_model(ac.ConvModel(**model.conv_model_spec()))
    else:
        eng.set_model(_native_model(jit, route))
    ys, xs = np.nonzero(np.any(field != 0, axis=2))
    eng.add_particles(np.stack([xs, ys, np.zeros_like(xs)], 1), field[ys, xs])
    for _ in range(steps):
        eng.step_native()
        motor.evolve_internal_state()
    dense = eng.to_dense((0, 0, g, g))
    ref = motor.get_dense_state()
    diff = float(np.max(np.abs(dense - ref)))
    assert diff <= 1e-4, f"sparse ({route}) vs AetheriaMotor: {diff:.3e}"
    # the universe grew by the receptive radius per step, exactly like the dense field's support
    assert eng.get_matter_count() == int(np.count_nonzero(np.any(ref != 0, axis=2)))
    assert eng.get_matter_count() > 64


def test_shim_and_python_route_agree(demo_root):
    if not _torch_support.shim_available():
        pytest.fail(f"LibTorch shim unavailable: {_torch_support.unavailable_reason()}")
    for name in DEMOS:
        exp, jit, meta, _ = _setup(demo_root, name)
        g, d = exp.grid_size_inference, exp.d_state
        a = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay, unitary=bool(meta["unitary"]))
        b = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay, unitary=bool(meta["unitary"]))
        a.set_model(_torch_support.load_via_shim(jit, "cpu"))
        b.set_model(_model_loader.load_model_for_engine(jit, "cpu"))
        a.step(STEPS)
        b.step(STEPS)
        diff = float(np.max(np.abs(a.get_state() - b.get_state())))
        assert diff <= 1e-6, f"{name}: shim vs Python route differ by {diff:.3e}"


def test_convlstm_memory_is_carried(demo_root):
    exp, jit, meta, model = _setup(demo_root, "DEMO_UNET_CONVLSTM")
    assert meta["has_memory"] is True
    g, d = exp.grid_size_inference, exp.d_state
    carried = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay)
    assert carried.load_model(jit), carried.get_last_error()
    amnesic = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay)
    native = _native_model(jit, _routes()[0])
    motor = AetheriaMotor(model, g, d, "cpu", exp)
    for _ in range(6):
        carried.step()
        motor.evolve_internal_state()
        amnesic.set_model(native)  # set_model resets the memory: every step starts from init_memory
        amnesic.step()
    assert float(np.max(np.abs(carried.get_state() - motor.get_dense_state()))) <= 1e-4
    # memory changes the result: a run that forgets it every step diverges
    assert float(np.max(np.abs(carried.get_state() - amnesic.get_state()))) > 1e-5
    h, c = motor.get_memory()
    assert np.any(h != 0) and np.any(c != 0)
    # clear() resets the memory with the field: the run repeats exactly
    first = None
    for _ in range(2):
        carried.clear()
        carried.step(3)
        if first is None:
            first = carried.get_state()
    np.testing.assert_array_equal(first, carried.get_state())


def test_local_conv_file_runs_as_builtin_conv_and_matches(demo_root, monkeypatch):
    """A LOCAL_CONV TorchScript file runs as the C conv stack (weights read from the file),
    with the same results as the TorchScript forward and as AetheriaMotor."""
    exp, jit, meta, model = _setup(demo_root, "DEMO_LOCAL_CONV")
    assert meta["native_equivalent"]["kind"] == "conv_stack"
    probe = ac.DenseEngine(exp.grid_size_inference, exp.d_state)
    chosen, report = _model_loader.select_model(probe, jit)
    assert report.route == "builtin-conv" and isinstance(chosen, ac.ConvModel)
    monkeypatch.setenv("ATHERIA_NATIVE_CONV", "0")
    _, other = _model_loader.select_model(probe, jit)
    assert other.route in ("torchscript-shim", "torchscript-python")
    monkeypatch.delenv("ATHERIA_NATIVE_CONV")
    g, d = exp.grid_size_inference, exp.d_state
    builtin = ac.DenseEngine(g, d)
    builtin.set_model(chosen)
    scripted = ac.DenseEngine(g, d)
    scripted.set_model(_native_model(jit, _routes()[0]))
    motor = AetheriaMotor(model, g, d, "cpu", exp)
    builtin.step(STEPS)
    scripted.step(STEPS)
    motor.evolve_step(STEPS)
    assert float(np.max(np.abs(builtin.get_state() - scripted.get_state()))) <= 1e-5
    assert float(np.max(np.abs(builtin.get_state() - motor.get_dense_state()))) <= 1e-4


def test_native_conv_refuses_a_mismatching_file(demo_root, tmp_path):
    """A file whose metadata claims a conv stack it is not gets the TorchScript route."""
    import json
    import zipfile

    exp, jit, meta, _ = _setup(demo_root, "DEMO_UNET")
    fake = dict(meta.raw, native_equivalent={"kind": "conv_stack", "activation": "relu", "n_layers": 2,
                                         "bias": False})
    path = tmp_path / "lying.pt"
    with zipfile.ZipFile(jit) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("/extra/atheria_meta.json"):
                data = json.dumps(fake).encode()
            dst.writestr(item, data)
    assert _model_loader.native_conv_model(str(path), _model_loader.read_metadata(str(path))) is None
    _, report = _model_loader.select_model(ac.DenseEngine(exp.grid_size_inference, exp.d_state), str(path))
    assert report.route in ("torchscript-shim", "torchscript-python")

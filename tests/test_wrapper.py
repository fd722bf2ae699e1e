"""NativeEngineWrapper (AetheriaMotor interface over the native engines) and the
create_motor factory with its logged fallbacks, on real quickly trained experiments."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import atheria_core as ac
from atheria_core import _model_loader
from atheria_core import experiments as exps
from atheria_core import wrapper as wmod
from atheria_core.export import export_model_to_jit
from atheria_core.motor import AetheriaMotor
from atheria_core.wrapper import NativeEngineWrapper, create_motor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(demo_root, name, engine="auto", **kw):
    exp = exps.load_experiment_config(name, demo_root)
    jit = export_model_to_jit(exp)
    g, d = exp.grid_size_inference, exp.d_state
    w = NativeEngineWrapper(g, d, "cpu", exp, engine=engine, **kw)
    assert w.load_model(jit), w.last_error
    motor = AetheriaMotor(exps.load_model_from_checkpoint(exp), g, d, "cpu", exp, **kw)
    return exp, w, motor


def test_wrapper_dense_follows_motor(demo_root):
    exp, w, motor = _pair(demo_root, "DEMO_UNET")
    assert w.engine_kind == "dense"
    for _ in range(10):
        w.evolve_internal_state()
        motor.evolve_internal_state()
    assert w.get_step_count() == motor.get_step_count() == 10
    assert np.max(np.abs(w.get_dense_state() - motor.get_dense_state())) <= 1e-4
    roi = (3, 5, 20, 11)
    sub = w.get_dense_state(roi)
    assert sub.shape == (6, 17, exp.d_state)
    np.testing.assert_array_equal(sub, w.get_dense_state()[5:11, 3:20])
    psi = w.state.psi
    assert isinstance(psi, torch.Tensor) and psi.dtype == torch.complex64
    assert tuple(psi.shape) == (1, exp.grid_size_inference, exp.grid_size_inference, exp.d_state)
    assert w.state.psi is psi, "state.psi is converted once per step, then cached"
    w.evolve_internal_state()
    assert w.state.psi is not psi
    with pytest.raises(ValueError):
        w.get_dense_state((0, 0, 10_000, 4))


@pytest.mark.parametrize("viz", ["density", "phase", "energy", "real", "imag", "gradient", "holographic",
                                 "holographic_bulk"])
def test_wrapper_visualization_payload_matches_motor(demo_root, viz):
    _, w, motor = _pair(demo_root, "DEMO_LOCAL_CONV")
    w.evolve_step(3)
    motor.evolve_step(3)
    a = w.get_visualization_data(viz, roi=(2, 2, 30, 20))
    b = motor.get_visualization_data(viz, roi=(2, 2, 30, 20))
    assert set(a) == set(b)
    assert a["shape"] == b["shape"] == {"holographic": (18, 28, 3), "holographic_bulk": (5, 18, 28)}.get(viz, (18, 28))
    assert a["step"] == b["step"] == 3
    assert (a["engine"], b["engine"]) == ("native", "python")
    np.testing.assert_allclose(a["data"], b["data"], atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose([a["min"], a["max"]], [b["min"], b["max"]], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("action,params", [("vortex", {"strength": 2.0, "radius": 6}),
                                           ("wave", {"strength": 0.7, "angle": 0.3}),
                                           ("collapse", {"strength": 0.5, "x": 10, "y": 12, "radius": 5})])
def test_wrapper_tools_match_motor(demo_root, action, params):
    _, w, motor = _pair(demo_root, "DEMO_UNET")
    w.apply_tool(action, params)
    motor.apply_tool(action, params)
    np.testing.assert_allclose(w.get_dense_state(), motor.get_dense_state(), atol=1e-6)
    w.evolve_internal_state()
    motor.evolve_internal_state()
    np.testing.assert_allclose(w.get_dense_state(), motor.get_dense_state(), atol=1e-4)
    before = w.get_dense_state()
    with pytest.raises(ValueError):
        w.apply_tool("teleport", {})
    np.testing.assert_array_equal(before, w.get_dense_state())


def test_wrapper_sparse_engine_on_a_blob(demo_root):
    """engine='sparse' runs the local model on matter only and still follows AetheriaMotor."""
    exp, w, motor = _pair(demo_root, "DEMO_LOCAL_CONV", engine="sparse", initial_state_mode="zeros")
    assert w.engine_kind == "sparse"
    g, d = exp.grid_size_inference, exp.d_state
    field = np.zeros((g, g, d), np.complex64)
    field[14:18, 14:18] = (1 + 1j) / np.sqrt(2 * d)
    w.set_state(field)
    motor.set_state(field)
    assert w.get_matter_count() == 16
    for _ in range(3):
        w.evolve_internal_state()
        motor.evolve_internal_state()
    assert np.max(np.abs(w.get_dense_state() - motor.get_dense_state())) <= 1e-4
    assert 16 < w.get_matter_count() < g * g


def test_wrapper_auto_picks_sparse_for_local_model_on_empty_field(demo_root):
    exp = exps.load_experiment_config("DEMO_LOCAL_CONV", demo_root)
    jit = export_model_to_jit(exp)
    w = NativeEngineWrapper(exp.grid_size_inference, exp.d_state, cfg=exp, initial_state_mode="zeros")
    assert w.load_model(jit)
    assert w.engine_kind == "sparse"
    w2 = NativeEngineWrapper(exp.grid_size_inference, exp.d_state, cfg=exp)  # complex_noise: full grid
    assert w2.load_model(jit)
    assert w2.engine_kind == "dense"


def test_wrapper_memory_model_and_regenerate(demo_root):
    _, w, motor = _pair(demo_root, "DEMO_UNET_CONVLSTM")
    assert w.engine_kind == "dense"
    initial = w.get_dense_state()
    w.evolve_step(4)
    motor.evolve_step(4)
    assert np.max(np.abs(w.get_dense_state() - motor.get_dense_state())) <= 1e-4
    w.regenerate_initial_state()
    motor.regenerate_initial_state()
    np.testing.assert_array_equal(w.get_dense_state(), initial)
    assert w.get_step_count() == 0
    w.evolve_step(2)
    motor.evolve_step(2)
    assert np.max(np.abs(w.get_dense_state() - motor.get_dense_state())) <= 1e-4


def test_wrapper_load_failure_keeps_previous_engine(demo_root, tmp_path):
    _, w, _ = _pair(demo_root, "DEMO_UNET")
    w.evolve_step(2)
    state = w.get_dense_state()
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    assert w.load_model(str(bad)) is False
    assert "bad.pt" in w.last_error
    assert w.load_model(str(tmp_path / "missing.pt")) is False
    assert "not found" in w.last_error.lower()
    np.testing.assert_array_equal(w.get_dense_state(), state)
    assert w.get_step_count() == 2
    w.cleanup()
    with pytest.raises(RuntimeError):
        w.evolve_internal_state()


def test_wrapper_without_model_raises():
    w = NativeEngineWrapper(16, 2)
    with pytest.raises(RuntimeError, match="load_model"):
        w.evolve_internal_state()
    with pytest.raises(ValueError):
        NativeEngineWrapper(16, 2, engine="gpu-magic")


# ---------------------------------------------------------------------------- factory
def test_factory_returns_native_and_logs(demo_root, caplog):
    caplog.set_level(logging.INFO, logger="atheria_core")
    motor = create_motor("DEMO_UNET", root=demo_root)
    assert isinstance(motor, NativeEngineWrapper) and motor.is_native
    assert "Native engine (C) loaded" in caplog.text


def test_factory_respects_use_native_false(demo_root, caplog):
    caplog.set_level(logging.INFO, logger="atheria_core")
    motor = create_motor("DEMO_UNET", root=demo_root, use_native=False)
    assert isinstance(motor, AetheriaMotor) and not motor.is_native


def test_factory_falls_back_when_extension_missing(demo_root, caplog, monkeypatch):
    monkeypatch.setattr(ac, "BACKEND", "python")
    monkeypatch.setattr(ac, "BACKEND_REASON", "compiled extension not importable: test")
    caplog.set_level(logging.INFO, logger="atheria_core")
    motor = create_motor("DEMO_UNET", root=demo_root)
    assert isinstance(motor, AetheriaMotor)
    assert "atheria_core not available: compiled extension not importable: test" in caplog.text


def test_factory_falls_back_when_export_fails(demo_root, caplog, monkeypatch):
    import atheria_core.export as export

    def boom(*a, **k):
        raise export.ExportError("traced and scripted models both failed verification")

    monkeypatch.setattr(export, "export_model_to_jit", boom)
    caplog.set_level(logging.INFO, logger="atheria_core")
    motor = create_motor("DEMO_UNET", root=demo_root)
    assert isinstance(motor, AetheriaMotor)
    assert "JIT model not found: traced and scripted" in caplog.text


def test_factory_falls_back_when_native_load_fails(demo_root, caplog, monkeypatch):
    def refuse(engine, path):
        raise _model_loader.ModelLoadError(f"{path}: incompatible TorchScript version (test)")

    monkeypatch.setattr(_model_loader, "select_model", refuse)
    caplog.set_level(logging.INFO, logger="atheria_core")
    motor = create_motor("DEMO_UNET", root=demo_root)
    assert isinstance(motor, AetheriaMotor)
    assert "error loading model in native engine:" in caplog.text
    assert "incompatible TorchScript version (test)" in caplog.text
    motor.evolve_internal_state()  # the Python engine works
    assert motor.get_step_count() == 1


def test_factory_unknown_experiment(tmp_path):
    with pytest.raises(exps.ExperimentNotFoundError):
        create_motor("NOPE", root=str(tmp_path))


# ---------------------------------------------------------------------------- the checklist script
@pytest.mark.parametrize("name,engine", [("DEMO_LOCAL_CONV", "auto"), ("DEMO_UNET_CONVLSTM", "dense"),
                                         ("DEMO_UNET_UNITARY", "auto")])
def test_checklist_script(demo_root, name, engine):
    # --max-slowdown is huge: speed is a benchmark matter, this checks the script works.
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "test_native_engine.py"), "--experiment", name,
           "--steps", "5", "--root", demo_root, "--engine", engine, "--max-slowdown", "1e9"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    for item in range(1, 8):
        assert f"[PASS] {item}." in out, out
    assert "ALL PASS" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback message")
def test_checklist_script_cuda_without_gpu(demo_root):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "test_native_engine.py"), "--experiment",
           "DEMO_LOCAL_CONV", "--steps", "2", "--root", demo_root, "--device", "cuda", "--max-slowdown", "1e9"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no CUDA GPU is available here; falling back to the CPU" in run.stdout

"""atheria_core.motor.AetheriaMotor — the reference dense engine (DESIGN §3.2, §3.3)."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atheria_core import models as M  # noqa: E402
from atheria_core.motor import (AetheriaMotor, Aetheria_Motor, apply_tool_numpy, engine_rule,  # noqa: E402
                                harmonic_vacuum)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


MASK = (1 << 64) - 1


# ------------------------------------------------------------------ independent scalar references
def _mix(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def vacuum_scalar(seed, x, y, z, step, k, strength=0.1):
    h = _mix(seed & MASK)
    for v in (x, y, z, step, k):
        h = _mix(h ^ (v & MASK))
    u1 = ((h >> 11) + 1) * 2.0 ** -53
    u2 = (_mix(h) >> 11) * 2.0 ** -53
    n = strength * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return complex(np.float32(math.cos(n)), np.float32(math.sin(n)))


def conv2d_np(x, w):
    """(C, H, W) x (O, C, k, k), zero padding k//2, no bias -> (O, H, W), float64 loops over taps."""
    O, C, k, _ = w.shape
    p = k // 2
    H, W = x.shape[1:]
    xp = np.zeros((C, H + 2 * p, W + 2 * p))
    xp[:, p:p + H, p:p + W] = x
    out = np.zeros((O, H, W))
    for i in range(k):
        for j in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], xp[:, i:i + H, j:j + W])
    return out


def rule_np(psi, delta_re, delta_im, unitary=False, gamma=0.0):
    """DESIGN §3.3 in float64: psi (H, W, d) complex, delta (d, H, W) re/im -> new psi."""
    dlt = np.moveaxis(delta_re, 0, -1) + 1j * np.moveaxis(delta_im, 0, -1)
    psi = psi.astype(np.complex128)
    if unitary:
        dlt = dlt * psi
    dlt = dlt - gamma * psi
    new = psi + dlt
    n = np.sqrt(np.sum(np.abs(new) ** 2, axis=-1, keepdims=True))
    return new / (n + 1e-9)


def local_conv_np(model, psi):
    d = psi.shape[-1]
    x = np.concatenate([psi.real, psi.imag], axis=-1).transpose(2, 0, 1).astype(np.float64)
    convs = [m.weight.detach().double().numpy() for m in model.net if isinstance(m, torch.nn.Conv2d)]
    for i, w in enumerate(convs):
        x = conv2d_np(x, w)
        if i < len(convs) - 1:
            x = np.tanh(x)
    return x[:d], x[d:]


# ------------------------------------------------------------------ vacuum
@pytest.mark.parametrize("seed,step,z", [(0, 0, 0), (7, 3, 0), (2 ** 64 - 5, 2 ** 40, -2), (123456789, 1, 5)])
def test_vacuum_vs_scalar(seed, step, z):
    roi = (-3, -2, 4, 3)
    a = harmonic_vacuum(3, roi, step, seed=seed, strength=0.25, z=z)
    assert a.shape == (5, 7, 3) and a.dtype == np.complex64
    ref = np.array([[[vacuum_scalar(seed, x, y, z, step, k, 0.25) for k in range(3)]
                     for x in range(roi[0], roi[2])] for y in range(roi[1], roi[3])])
    assert np.max(np.abs(a - ref)) <= 1e-7


def test_vacuum_statistics():
    a = harmonic_vacuum(4, (0, 0, 64, 64), 0, seed=3, strength=0.1)
    n = np.angle(a)                                      # = strength * N(0, 1)
    assert abs(n.mean()) < 0.005 and abs(n.std() - 0.1) < 0.005
    assert np.allclose(np.abs(a), 1.0, atol=1e-6)


def test_initial_state_is_vacuum_at_step_0():
    mot = AetheriaMotor(None, 12, 3, seed=42, vacuum_strength=0.3)
    psi = mot.state.psi
    assert isinstance(psi, torch.Tensor) and psi.shape == (1, 12, 12, 3) and psi.dtype == torch.complex64
    ref = np.array([[[vacuum_scalar(42, x, y, 0, 0, k, 0.3) for k in range(3)] for x in range(12)]
                    for y in range(12)])
    assert np.max(np.abs(mot.get_dense_state() - ref)) <= 1e-7


def test_vacuum_matches_native_backend_when_available():
    import atheria_core as ac
    vac = ac.HarmonicVacuum(3, seed=9, strength=0.1)
    if not hasattr(vac, "region"):
        pytest.skip("HarmonicVacuum.region not implemented by this backend yet")
    assert np.max(np.abs(vac.region((0, 0, 6, 5), 2) - harmonic_vacuum(3, (0, 0, 6, 5), 2, seed=9))) <= 1e-7


def test_initial_modes_and_regenerate():
    z = AetheriaMotor(None, 4, 2, initial_state_mode="zeros")
    assert not z.get_dense_state().any()
    r = AetheriaMotor(None, 4, 2, initial_state_mode="random", seed=5)
    assert np.allclose(np.linalg.norm(r.get_dense_state(), axis=-1), 1.0, atol=1e-5)
    cfg = {"GAMMA_DECAY": 0.25, "INITIAL_STATE_MODE_INFERENCE": "zeros"}
    c = Aetheria_Motor(None, 4, 2, "cpu", cfg)
    assert c.gamma_decay == 0.25 and c.initial_state_mode == "zeros"
    with pytest.raises(ValueError, match="initial_state_mode"):
        AetheriaMotor(None, 4, 2, initial_state_mode="bogus")
    with pytest.raises(ValueError, match="gamma_decay"):
        AetheriaMotor(None, 4, 2, gamma_decay=-1)


# ------------------------------------------------------------------ the step
@pytest.mark.parametrize("unitary,gamma", [(False, 0.0), (False, 0.2), (True, 0.0), (True, 0.1)])
def test_one_step_vs_numpy(unitary, gamma):
    torch.manual_seed(0)
    model = M.LocalConv(3, 5, n_layers=2, activation="tanh")
    mot = AetheriaMotor(model, 10, 3, gamma_decay=gamma, unitary=unitary, seed=1, vacuum_strength=0.5)
    psi0 = mot.get_dense_state()
    d_re, d_im = local_conv_np(model, psi0)
    mot.evolve_internal_state()
    expected = rule_np(psi0, d_re, d_im, unitary, gamma)
    assert mot.get_step_count() == mot.step_count == 1
    assert np.max(np.abs(mot.get_dense_state() - expected)) < 2e-6


def test_unitary_auto_from_model_and_override():
    m = M.UNetUnitary(2, 4, depth=1)
    assert AetheriaMotor(m, 8, 2).unitary is True
    assert AetheriaMotor(m, 8, 2, unitary=False).unitary is False
    assert AetheriaMotor(M.UNet(2, 4, depth=1), 8, 2).unitary is False


def test_decay_only():
    mot = AetheriaMotor(None, 6, 2, gamma_decay=0.5, initial_state_mode="random", seed=2)
    psi0 = mot.get_dense_state()
    mot.evolve_internal_state()
    zero = np.zeros((2, 6, 6))
    assert np.max(np.abs(mot.get_dense_state() - rule_np(psi0, zero, zero, False, 0.5))) < 1e-6


def test_engine_rule_matches_numpy():
    x = torch.randn(2, 6, 5, 4)
    delta = torch.randn(2, 6, 5, 4)
    out = engine_rule(x, delta, unitary=True, gamma_decay=0.3).numpy()
    for b in range(2):
        psi = (x[b, :3] + 1j * x[b, 3:]).numpy().transpose(1, 2, 0)
        exp = rule_np(psi, delta[b, :3].numpy(), delta[b, 3:].numpy(), True, 0.3)
        got = out[b, :3].transpose(1, 2, 0) + 1j * out[b, 3:].transpose(1, 2, 0)
        assert np.max(np.abs(got - exp)) < 1e-5


def test_convlstm_memory_carried_and_reset():
    torch.manual_seed(3)
    m = M.UNetConvLSTM(2, 4, depth=1)
    mot = AetheriaMotor(m, 8, 2, seed=4)
    psi0 = mot.get_dense_state()
    assert mot.has_memory and mot.get_memory() is None
    mot.evolve_internal_state()
    s1 = mot.get_dense_state()
    h, c = mot.get_memory()
    assert h.shape == (1, 8, 4, 4) and np.abs(h).max() > 0
    # same field, memory from step 1 -> a different result
    mot.set_state(psi0)
    mot.evolve_internal_state()
    assert np.max(np.abs(mot.get_dense_state() - s1)) > 1e-4
    # reset restores the first result exactly
    mot.regenerate_initial_state()
    assert mot.get_step_count() == 0 and mot.get_memory() is None
    mot.evolve_internal_state()
    assert np.array_equal(mot.get_dense_state(), s1)
    # reset_memory alone as well
    mot.set_state(psi0)
    mot.reset_memory()
    mot.evolve_internal_state()
    assert np.array_equal(mot.get_dense_state(), s1)


class _Bad(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "nan":
            return torch.full_like(x, float("nan"))
        if self.kind == "shape":
            return x[:, :1]
        raise RuntimeError("boom")


@pytest.mark.parametrize("kind,exc", [("nan", FloatingPointError), ("shape", ValueError), ("raise", RuntimeError)])
def test_failed_step_changes_nothing(kind, exc):
    mot = AetheriaMotor(_Bad(kind), 4, 2)
    before = mot.get_dense_state()
    with pytest.raises(exc):
        mot.evolve_internal_state()
    assert mot.get_step_count() == 0 and np.array_equal(mot.get_dense_state(), before)


# ------------------------------------------------------------------ read-outs
def test_dense_state_roi():
    mot = AetheriaMotor(None, 8, 2, seed=1)
    full = mot.get_dense_state()
    assert full.shape == (8, 8, 2) and full.dtype == np.complex64
    assert np.array_equal(mot.get_dense_state((1, 2, 5, 3)), full[2:3, 1:5])
    full[0, 0, 0] = 99                                   # a copy
    assert mot.get_dense_state()[0, 0, 0] != 99
    for bad in [(0, 0, 9, 8), (3, 0, 3, 8), (0, 0, 8), (-1, 0, 4, 4), (0.5, 0, 4, 4)]:
        with pytest.raises(ValueError):
            mot.get_dense_state(bad)


def _grad(a):
    gy = np.gradient(a, axis=0) if a.shape[0] > 1 else np.zeros_like(a)
    gx = np.gradient(a, axis=1) if a.shape[1] > 1 else np.zeros_like(a)
    return gy, gx


@pytest.mark.parametrize("roi", [None, (2, 1, 9, 7), (3, 3, 4, 8), (0, 5, 10, 6)])
def test_visualizations_vs_numpy(roi):
    mot = AetheriaMotor(None, 10, 3, initial_state_mode="random", seed=6)
    f = mot.get_dense_state(roi).astype(np.complex128)
    dens = np.sum(np.abs(f) ** 2, axis=-1)
    gy, gx = _grad(f)
    dgy, dgx = _grad(dens)
    expected = {
        "density": dens,
        "phase": np.angle(f[..., 1]),
        "energy": np.sum(np.abs(gx) ** 2 + np.abs(gy) ** 2, axis=-1),
        "real": f[..., 1].real,
        "imag": f[..., 1].imag,
        "gradient": np.hypot(dgx, dgy),
    }
    for t, ref in expected.items():
        p = mot.get_visualization_data(t, roi=roi, channel=1)
        assert p["type"] == t and p["step"] == 0 and p["data"].dtype == np.float32
        assert p["shape"] == ref.shape == p["data"].shape
        assert np.allclose(p["data"], ref, atol=1e-6), t
        assert p["min"] == float(p["data"].min()) and p["max"] == float(p["data"].max())
    with pytest.raises(ValueError, match="viz_type"):
        mot.get_visualization_data("bogus")
    with pytest.raises(ValueError, match="channel"):
        mot.get_visualization_data("phase", channel=3)


# ------------------------------------------------------------------ tools
def _tool_ref(f, action, x, y, radius, s, angle=0.0):
    """Per-cell loop straight from docs/tools.md."""
    out = f.astype(np.complex64).copy()
    H, W, d = f.shape
    for yc in range(H):
        for xc in range(W):
            if (xc - x) ** 2 + (yc - y) ** 2 > radius ** 2:
                continue
            psi = f[yc, xc].astype(np.complex128)
            if action == "collapse":
                k = int(np.argmax(np.abs(psi)))
                proj = np.zeros_like(psi)
                proj[k] = psi[k]
                new = (1 - s) * psi + s * proj
                nn = np.linalg.norm(new)
                if nn != 0:
                    new = new * np.linalg.norm(psi) / nn
            elif action == "vortex":
                new = psi * np.exp(1j * s * math.atan2(yc - y, xc - x))
            else:
                new = psi * np.exp(1j * s * ((xc - x) * math.cos(angle) + (yc - y) * math.sin(angle)))
            out[yc, xc] = new
    return out


@pytest.mark.parametrize("action,params,full", [
    ("collapse", {"x": 4, "y": 5, "radius": 3, "strength": 0.7}, (4, 5, 3, 0.7, 0.0)),
    ("collapse", {}, (6.0, 6.0, 1.5, 1.0, 0.0)),
    ("vortex", {"x": 6.5, "y": 5, "radius": 4.5, "strength": 2}, (6.5, 5, 4.5, 2.0, 0.0)),
    ("wave", {"radius": 20, "strength": 0.4, "angle": 0.6}, (6.0, 6.0, 20, 0.4, 0.6)),
])
def test_tools_vs_formulas(action, params, full):
    mot = AetheriaMotor(None, 12, 3, initial_state_mode="random", seed=8)
    f = mot.get_dense_state()
    mot.apply_tool(action, params)
    ref = _tool_ref(f, action, *full)
    assert np.max(np.abs(mot.get_dense_state() - ref)) < 1e-6
    assert np.max(np.abs(apply_tool_numpy(f, action, params) - ref)) < 1e-6


def test_collapse_ties_and_norm():
    f = np.zeros((1, 1, 3), dtype=np.complex64)
    f[0, 0] = [1, 1j, 0.5]
    out = apply_tool_numpy(f, "collapse", {"x": 0, "y": 0, "radius": 1, "strength": 1.0})
    assert np.allclose(out[0, 0], [math.sqrt(2.25), 0, 0])     # lowest index on ties, norm kept


@pytest.mark.parametrize("action,params,exc", [
    ("explode", {}, ValueError),
    ("wave", {"speed": 1}, ValueError),
    ("wave", {"strength": float("nan")}, ValueError),
    ("vortex", {"radius": 0}, ValueError),
    ("vortex", {"radius": -2}, ValueError),
    ("collapse", {"strength": 1.5}, ValueError),
    ("collapse", {"strength": -0.1}, ValueError),
    ("wave", {"x": "3"}, TypeError),
    ("wave", [1, 2], TypeError),
])
def test_tool_errors_change_nothing(action, params, exc):
    mot = AetheriaMotor(None, 8, 2, seed=1)
    before = mot.get_dense_state()
    with pytest.raises(exc):
        mot.apply_tool(action, params)
    assert np.array_equal(mot.get_dense_state(), before)


def test_cleanup_and_validation():
    mot = AetheriaMotor(None, 4, 2)
    mot.cleanup()
    with pytest.raises(RuntimeError, match="cleaned up"):
        mot.evolve_internal_state()
    with pytest.raises(ValueError):
        AetheriaMotor(None, 0, 2)
    with pytest.raises(TypeError):
        AetheriaMotor(42, 4, 2)
    with pytest.raises(ValueError):
        mot2 = AetheriaMotor(None, 4, 2)
        mot2.set_state(np.zeros((3, 4, 2)))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            AetheriaMotor(None, 4, 2, device="cuda")


def test_set_state_accepts_layouts():
    mot = AetheriaMotor(None, 3, 2)
    a = (np.arange(18).reshape(3, 3, 2) * (1 + 1j)).astype(np.complex64)
    mot.set_state(a[None])
    assert np.array_equal(mot.get_dense_state(), a)
    with pytest.raises(ValueError, match="non-finite"):
        mot.set_state(np.full((3, 3, 2), np.nan))


@pytest.mark.parametrize("arch,params", [
    ("LOCAL_CONV", {"d_state": 2, "hidden_channels": 4}),
    ("UNET_UNITARY", {"d_state": 2, "hidden_channels": 4, "depth": 1}),
    ("UNET_CONVLSTM", {"d_state": 2, "hidden_channels": 4, "depth": 1}),
])
def test_native_dense_engine_matches_reference(tmp_path, arch, params):
    """The exported file run by atheria_core.DenseEngine reproduces AetheriaMotor."""
    import atheria_core as ac
    from atheria_core.export import export_model_to_jit
    torch.manual_seed(5)
    model = M.build_model(arch, params).eval()
    path = export_model_to_jit(model, str(tmp_path / "m.pt"), grid_size=8)
    eng = ac.DenseEngine(8, 2, unitary=model.unitary, gamma_decay=0.05, seed=3)
    assert eng.load_model(path), eng.get_last_error()
    mot = AetheriaMotor(model, 8, 2, gamma_decay=0.05, seed=3)
    assert np.array_equal(eng.get_state(), mot.get_dense_state())
    for _ in range(3):
        eng.step()
        mot.evolve_internal_state()
    assert np.max(np.abs(eng.get_state() - mot.get_dense_state())) < 1e-5

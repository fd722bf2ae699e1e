"""Drop-in for the original module (issue 8): top-level additions and ``atheria_core.compat``.

The compat tests drive the original API the way the original backend did
(per-cell loops with torch tensors, lists of Coord3D, [1, C, H, W] dense
states), on both backends.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import atheria_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- top level
def test_version_ints_match_version_string(ac):
    import atheria_core._version as v
    parts = tuple(int(p) for p in atheria_core.__version__.split("."))
    assert (atheria_core.VERSION_MAJOR, atheria_core.VERSION_MINOR, atheria_core.VERSION_PATCH) == parts[:3]
    assert ac.get_version() == atheria_core.__version__ == v.__version__
    assert all(isinstance(x, int) for x in (v.VERSION_MAJOR, v.VERSION_MINOR, v.VERSION_PATCH))


def test_has_torch_support_means_torch_tensors_accepted():
    expected = importlib.util.find_spec("torch") is not None
    assert atheria_core.has_torch_support() is expected
    # the shim has its own flag; it implies torch
    assert isinstance(atheria_core.has_torch_shim(), bool)
    if atheria_core.has_torch_shim():
        assert atheria_core.has_torch_support()


def test_has_torch_support_true_without_shim(tmp_path):
    env = dict(os.environ, ATHERIA_NO_SHIM="1", PYTHONPATH=os.path.join(ROOT, "python"))
    code = ("import atheria_core as ac; import torch; "
            "print(ac.has_torch_support(), ac.has_torch_shim())")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "False"]


# --------------------------------------------------------------------------- holographic views
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float32) / 16.0


def _torch_bulk(base: torch.Tensor, depth: int) -> torch.Tensor:
    """The original's generate_bulk_state, written with torch: grouped conv, zero padding 1."""
    cur = base
    if cur.dim() == 2:
        cur = cur.view(1, 1, *cur.shape)
    elif cur.dim() == 3:
        cur = cur.unsqueeze(0)
    c = cur.shape[1]
    k = _KERNEL.reshape(1, 1, 3, 3).repeat(c, 1, 1, 1)
    layers = [cur]
    for _ in range(1, depth):
        cur = F.conv2d(cur, k, padding=1, groups=c)
        layers.append(cur)
    return torch.cat(layers, 1)


def _torch_holographic(field: np.ndarray, channel: int = 0) -> np.ndarray:
    """(h, w, d) complex -> (h, w, 3): the original's R, G, B formulas in torch float32."""
    t = torch.from_numpy(np.ascontiguousarray(field, dtype=np.complex64))
    dens = (t.abs() ** 2).sum(-1)
    r = torch.clamp(dens * 5.0, max=1.0)
    g = (torch.angle(t[..., channel]) + np.pi) / (2 * np.pi)
    b = torch.clamp((t[..., channel].real + 1.0) * 0.5, 0.0, 1.0)
    return torch.stack([r, g, b], -1).numpy()


def _torch_holographic_bulk(field: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(field, dtype=np.complex64))
    dens = (t.abs() ** 2).sum(-1)
    return _torch_bulk(dens, 5).squeeze(0).numpy()


def _field(h: int, w: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = (rng.normal(size=(h, w, d)) + 1j * rng.normal(size=(h, w, d))) * 0.4
    f[rng.random((h, w)) < 0.3] *= 4.0          # some cells past R's and B's clamps
    return f.astype(np.complex64)


@pytest.mark.parametrize("channel", [0, 1])
def test_dense_holographic_matches_torch_reference(ac, channel):
    g, d = 12, 3
    eng = ac.DenseEngine(g, d)
    f = _field(g, g, d, seed=1)
    eng.set_state(f)
    out = eng.compute_visualization("holographic", channel=channel)
    assert out.shape == (g, g, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, _torch_holographic(f, channel), atol=2e-7, rtol=0)
    roi = (2, 3, 9, 7)
    sub = eng.compute_visualization("holographic", roi, channel=channel)
    np.testing.assert_array_equal(sub, out[3:7, 2:9])


def test_dense_holographic_bulk_matches_torch_reference(ac):
    g, d = 11, 2
    eng = ac.DenseEngine(g, d)
    f = _field(g, g, d, seed=2)
    eng.set_state(f)
    out = eng.compute_visualization("holographic_bulk")
    assert out.shape == (5, g, g) and out.dtype == np.float32
    ref = _torch_holographic_bulk(f)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6 * float(np.abs(ref).max()))
    # layer 0 is the density map itself
    np.testing.assert_allclose(out[0], eng.compute_visualization("density"), rtol=1e-7)
    # the blur spreads: later layers are smoother (smaller total variation)
    tv = [float(np.abs(np.diff(out[k], axis=1)).sum()) for k in range(5)]
    assert all(a > b for a, b in zip(tv, tv[1:]))


def test_sparse_holographic_over_window(ac):
    g, d = 10, 2
    eng = ac.Engine(d, grid_size=g, background="zero")
    f = _field(g, g, d, seed=3)
    f[np.random.default_rng(4).random((g, g)) < 0.5] = 0
    ys, xs = np.nonzero(np.any(f != 0, axis=2))
    eng.add_particles(np.stack([xs, ys, np.zeros_like(xs)], 1), f[ys, xs])
    h = eng.compute_visualization("holographic")
    b = eng.compute_visualization("holographic_bulk", (1, 2, 9, 8))
    assert h.shape == (g, g, 3) and b.shape == (5, 6, 8)
    np.testing.assert_allclose(h, _torch_holographic(f), atol=2e-7, rtol=0)
    ref = _torch_holographic_bulk(f[2:8, 1:9])
    np.testing.assert_allclose(b, ref, rtol=1e-6, atol=1e-6 * float(np.abs(ref).max()))


def test_backends_agree_on_holographic(c_backend, py_backend):
    g, d = 9, 3
    f = _field(g, g, d, seed=5)
    outs = []
    for mod in (c_backend, py_backend):
        eng = mod.DenseEngine(g, d)
        eng.set_state(f)
        outs.append((eng.compute_visualization("holographic", channel=2),
                     eng.compute_visualization("holographic_bulk")))
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=1e-7, rtol=0)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=2e-7, atol=1e-9)


def test_unknown_viz_type_still_raises_at_top_level(ac):
    with pytest.raises(ValueError, match="holographic_bulk"):
        ac.DenseEngine(4, 1).compute_visualization("nope")


def _tiny_jit(tmp_path, d):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2 * d, 2 * d, 3, padding=1))
    with torch.no_grad():
        model[0].weight.mul_(0.3)
    path = str(tmp_path / "tiny.pt")
    with warnings.catch_warnings():     # torch 2.13 deprecates torch.jit; the files are still the contract
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model.eval()), path)
    return model.eval(), path


@pytest.mark.parametrize("viz", ["holographic", "holographic_bulk"])
def test_motor_and_wrapper_holographic_payloads(tmp_path, viz):
    from atheria_core.motor import AetheriaMotor, visualization_numpy
    from atheria_core.wrapper import NativeEngineWrapper
    g, d = 12, 2
    model, path = _tiny_jit(tmp_path, d)
    motor = AetheriaMotor(model, g, d, "cpu")
    w = NativeEngineWrapper(g, d, "cpu", engine="dense")
    assert w.load_model(path), w.last_error
    for _ in range(2):
        motor.evolve_internal_state()
        w.evolve_internal_state()
    roi = (1, 2, 11, 9)
    a = w.get_visualization_data(viz, roi=roi)
    b = motor.get_visualization_data(viz, roi=roi)
    shape = (7, 10, 3) if viz == "holographic" else (5, 7, 10)
    assert a["shape"] == b["shape"] == shape == a["data"].shape
    np.testing.assert_allclose(a["data"], b["data"], atol=2e-6, rtol=1e-5)
    field = motor.get_dense_state(roi)
    ref = _torch_holographic(field) if viz == "holographic" else _torch_holographic_bulk(field)
    np.testing.assert_allclose(visualization_numpy(field, viz), ref, atol=2e-6, rtol=1e-6)
    np.testing.assert_allclose(b["data"], ref, atol=2e-6, rtol=1e-6)


# --------------------------------------------------------------------------- generate_bulk_state
@pytest.mark.parametrize("shape", [(9, 13), (3, 8, 7), (1, 2, 6, 10)])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_generate_bulk_state_matches_torch_grouped_conv(ac, shape, depth):
    base = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    out = ac.DenseEngine(4, 1).generate_bulk_state(base.numpy(), depth)
    ref = _torch_bulk(base, depth).numpy()
    c = 1 if len(shape) == 2 else shape[-3]
    assert out.shape == (1, depth * c, shape[-2], shape[-1]) == ref.shape
    assert out.dtype == np.float32
    # each blur adds at most a few float32 roundings per value (the kernel weights are exact)
    np.testing.assert_allclose(out, ref, rtol=0, atol=depth * 4e-7 * float(np.abs(ref).max()))
    np.testing.assert_array_equal(out[0, :c], base.numpy().reshape(c, shape[-2], shape[-1]))


def test_generate_bulk_state_backends_agree(c_backend, py_backend):
    base = np.random.default_rng(8).normal(size=(2, 15, 11)).astype(np.float32)
    a = c_backend.DenseEngine(3, 1).generate_bulk_state(base, 6)
    b = py_backend.DenseEngine(3, 1).generate_bulk_state(base, 6)
    np.testing.assert_array_equal(a, b)


def test_generate_bulk_state_does_not_touch_the_engine(ac):
    eng = ac.DenseEngine(5, 2)
    before = eng.get_state()
    eng.generate_bulk_state(np.ones((5, 5), np.float32), 3)
    np.testing.assert_array_equal(eng.get_state(), before)
    assert eng.get_step_count() == 0


@pytest.mark.parametrize("base,depth,exc", [
    (np.ones((4, 4)), 0, ValueError),
    (np.ones((4, 4)), -1, ValueError),
    (np.ones((4, 4)), 2.0, TypeError),
    (np.ones((4, 4)), True, TypeError),
    (np.ones((4, 4), np.complex64), 2, TypeError),
    (np.ones(4), 2, ValueError),
    (np.ones((2, 1, 4, 4)), 2, ValueError),
    (None, 2, TypeError),
    ("abc", 2, TypeError),
    (np.ones((64, 64)), 1 << 20, ValueError),
])
def test_generate_bulk_state_bad_input(ac, base, depth, exc):
    with pytest.raises(exc, match="depth|base_field"):
        ac.DenseEngine(4, 1).generate_bulk_state(base, depth)

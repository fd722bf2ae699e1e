"""API conformance of ZeroModel, ConvModel, Engine and DenseEngine on both
backends (the ``ac`` fixture: atheria_core._core or atheria_core._fallback).

Numbers are checked against independent references written here: torch
Conv2d stacks, and the step rule of DESIGN §3.3 in NumPy.  Every bad input
must raise a clear exception and leave the universe unchanged.
"""
from __future__ import annotations

import math
import threading
import time
import warnings

import numpy as np
import pytest
from tolerance import assert_close_f32, conv_stack_tol

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-5


# ----------------------------------------------------------------- helpers

def rand_states(rng, n, d, scale=1.0):
    return (scale * (rng.standard_normal((n, d)) + 1j * rng.standard_normal((n, d)))).astype(np.complex64)


def conv_params(rng, chans, ks, bias=True, scale=0.3):
    ws = [(scale * rng.standard_normal((chans[i + 1], chans[i], k, k))).astype(np.float32) for i, k in enumerate(ks)]
    bs = [(0.1 * rng.standard_normal(chans[i + 1])).astype(np.float32) if bias else None for i in range(len(ks))]
    return ws, bs


ACTS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu, "identity": lambda t: t}


def torch_conv_stack(x, ws, bs, act="relu", periodic=False):
    """Reference: torch Conv2d(padding=k//2) layers (or circular padding at every layer)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).double()
    for i, (w, b) in enumerate(zip(ws, bs)):
        k = w.shape[-1]
        wt = torch.from_numpy(w).double()
        bt = torch.from_numpy(b).double() if b is not None else None
        if periodic:
            t = F.conv2d(F.pad(t, (k // 2,) * 4, mode="circular"), wt, bt)
        else:
            t = F.conv2d(t, wt, bt, padding=k // 2)
        if i + 1 < len(ws):
            t = ACTS[act](t)
    return t.numpy()


def np_rule(psi, delta, gamma=0.0, unitary=False):
    """DESIGN §3.3 steps 3-5 in float64: returns (psi', n)."""
    psi = psi.astype(np.complex128)
    delta = delta.astype(np.complex128)
    if unitary:
        delta = delta * psi
    delta = delta - gamma * psi
    new = psi + delta
    n = np.sqrt(np.sum(np.abs(new) ** 2, axis=-1))
    return new / (n[..., None] + 1e-9), n


def field_to_x(psi):
    """(H, W, d) complex -> (1, 2d, H, W) float32."""
    return np.concatenate([psi.real, psi.imag], axis=-1).transpose(2, 0, 1)[None].astype(np.float32)


def x_to_delta(out, d):
    """(1, 2d, H, W) -> (H, W, d) complex."""
    o = out[0].transpose(1, 2, 0)
    return o[..., :d] + 1j * o[..., d:]


def sorted_matter(eng):
    c, s = eng.matter()
    order = np.lexsort((c[:, 0], c[:, 1], c[:, 2]))
    return c[order], s[order]


def snapshot(eng):
    if hasattr(eng, "matter"):
        c, s = sorted_matter(eng)
        return ("sparse", c.copy(), s.copy(), eng.get_step_count(), eng.get_matter_count())
    return ("dense", eng.get_state().copy(), eng.get_step_count())


def assert_unchanged(eng, snap):
    now = snapshot(eng)
    assert len(now) == len(snap)
    for a, b in zip(now, snap):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b


def blob(side, x0=0, y0=0, z=0):
    ys, xs = np.mgrid[y0:y0 + side, x0:x0 + side]
    return np.stack([xs.ravel(), ys.ravel(), np.full(side * side, z)], axis=1).astype(np.int64)


# ------------------------------------------------------------------ models

def test_zero_model(ac):
    m = ac.ZeroModel()
    assert m.receptive_radius == 0
    x = np.random.default_rng(0).standard_normal((2, 6, 3, 5)).astype(np.float32)
    y = m(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    assert not np.any(y)


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu", "identity"])
def test_conv_model_matches_torch(ac, act):
    rng = np.random.default_rng(1)
    ws, bs = conv_params(rng, [6, 10, 7, 6], [3, 5, 1])
    bs[1] = None
    m = ac.ConvModel(ws, bs, activation=act)
    assert m.receptive_radius == 3 and m.channels == 6 and m.n_layers == 3 and m.activation == act
    assert m.zero_preserving is False
    x = rng.standard_normal((3, 6, 9, 7)).astype(np.float32)
    y = m(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    tol = conv_stack_tol(x, ws, bs)
    assert_close_f32(y, torch_conv_stack(x, ws, bs, act), tol)
    # torch.nn layers themselves (weights as tensors that require grad are accepted)
    layers = [torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1], padding=w.shape[-1] // 2, bias=b is not None)
              for w, b in zip(ws, bs)]
    for layer, w, b in zip(layers, ws, bs):
        layer.weight.data = torch.from_numpy(w)
        if b is not None:
            layer.bias.data = torch.from_numpy(b)
    m2 = ac.ConvModel([layer.weight for layer in layers], [layer.bias for layer in layers], activation=act)
    with torch.no_grad():
        t = torch.from_numpy(x)
        for i, layer in enumerate(layers):
            t = layer(t)
            if i + 1 < len(layers):
                t = ACTS[act](t)
    assert_close_f32(m2(x), t.numpy(), tol)


def test_conv_model_zero_preserving(ac):
    rng = np.random.default_rng(2)
    ws, _ = conv_params(rng, [4, 4], [3])
    assert ac.ConvModel(ws).zero_preserving is True
    assert ac.ConvModel(ws, [np.zeros(4, np.float32)]).zero_preserving is True
    assert ac.ConvModel(ws, [np.full(4, 0.5, np.float32)]).zero_preserving is False


def test_conv_model_bad_input(ac):
    rng = np.random.default_rng(3)
    w3 = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    with pytest.raises((TypeError, ValueError)):
        ac.ConvModel([])
    with pytest.raises(ValueError):
        ac.ConvModel([rng.standard_normal((4, 4, 2, 2)).astype(np.float32)])        # even kernel
    with pytest.raises(ValueError):
        ac.ConvModel([rng.standard_normal((4, 4, 3, 5)).astype(np.float32)])        # not square
    with pytest.raises(ValueError):
        ac.ConvModel([rng.standard_normal((4, 4, 3)).astype(np.float32)])           # not 4-D
    with pytest.raises(ValueError):
        ac.ConvModel([w3, rng.standard_normal((4, 5, 3, 3)).astype(np.float32)])    # in != previous out
    with pytest.raises(ValueError):
        ac.ConvModel([rng.standard_normal((6, 4, 3, 3)).astype(np.float32)])        # first in != last out
    with pytest.raises(ValueError):
        ac.ConvModel([w3], [np.zeros(3, np.float32)])                               # bias shape
    with pytest.raises(ValueError):
        ac.ConvModel([w3], [None, None])                                            # bias count
    with pytest.raises(ValueError):
        ac.ConvModel([w3], activation="foo")
    bad = w3.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        ac.ConvModel([bad])
    with pytest.raises(TypeError):
        ac.ConvModel([w3.astype(np.complex64)])
    m = ac.ConvModel([w3])
    with pytest.raises(ValueError):
        m(np.zeros((1, 5, 3, 3), np.float32))                                        # wrong channels
    with pytest.raises(ValueError):
        m(np.zeros((4, 3, 3), np.float32))                                           # not 4-D


# -------------------------------------------------------------- step rule

@pytest.mark.parametrize("unitary,gamma", [(False, 0.0), (False, 0.2), (True, 0.0), (True, 0.1)])
def test_step_rule_against_numpy(ac, unitary, gamma):
    """A callable model whose update depends only on the centre: delta = tanh(x)."""
    rng = np.random.default_rng(4)
    d, threshold = 3, 0.3
    coords = np.array([[0, 0, 0], [5, 0, 0], [10, 10, 0], [-7, 3, 2], [20, -20, 0], [30, 30, 0]], np.int64)
    states = rand_states(rng, len(coords), d)
    states[4] *= 0.05            # |psi| ~ 0.1: dropped by the threshold after the first step
    states[5] *= 0.01
    eng = ac.Engine(d, background="zero", threshold=threshold, gamma_decay=gamma, unitary=unitary)

    def model(batch):
        assert isinstance(batch, np.ndarray) and batch.dtype == np.float32 and batch.flags.c_contiguous
        assert batch.ndim == 4 and batch.shape[1:] == (2 * d, 3, 3)
        return np.tanh(batch)

    eng.set_model(model)
    eng.add_particles(coords, states)
    psi = states.astype(np.complex128)
    alive = np.ones(len(coords), bool)
    for _ in range(3):
        eng.step()
        x = psi
        delta = np.tanh(x.real) + 1j * np.tanh(x.imag)
        psi, n = np_rule(x, delta, gamma, unitary)
        alive &= n > threshold
        got_c, got_s = sorted_matter(eng)
        exp_c = coords[alive]
        order = np.lexsort((exp_c[:, 0], exp_c[:, 1], exp_c[:, 2]))
        np.testing.assert_array_equal(got_c, exp_c[order])
        np.testing.assert_allclose(got_s, psi[alive][order], atol=TOL, rtol=0)
    assert eng.get_step_count() == 3
    assert not alive[4] and not alive[5] and alive.any()          # the threshold acted


def test_step_rule_vacuum_neighbours(ac):
    """Absent neighbours read the vacuum at the current step, then are normalised (ZeroModel)."""
    d = 2
    eng = ac.Engine(d, seed=7, vacuum_strength=0.3)
    eng.set_model(ac.ZeroModel())
    eng.add_particle((0, 0), np.array([3 + 4j, 0], np.complex64))
    vac = ac.HarmonicVacuum(d, seed=7, strength=0.3)
    np.testing.assert_allclose(eng.get_state_at((1, 1)), vac.get_fluctuation((1, 1, 0), 0), atol=0)
    assert eng.step() == 9
    for c in [(1, 1, 0), (-1, 0, 0), (0, 1, 0)]:
        v = vac.get_fluctuation(c, 0).astype(np.complex128)
        exp, _ = np_rule(v, np.zeros(d))
        np.testing.assert_allclose(eng.get_state_at(c), exp, atol=TOL)
    np.testing.assert_allclose(eng.get_state_at((0, 0)), [0.6 + 0.8j, 0], atol=TOL)
    # after the step, absent cells read the vacuum at step 1
    np.testing.assert_allclose(eng.get_state_at((5, 5)), vac.get_fluctuation((5, 5, 0), 1), atol=0)
    dense = eng.to_dense((-3, -3, 4, 4))
    assert dense.shape == (7, 7, d) and dense.dtype == np.complex64
    region = vac.region((-3, -3, 4, 4), step=1)
    np.testing.assert_allclose(dense[0, 0], region[0, 0], atol=0)
    np.testing.assert_allclose(dense[3, 3], eng.get_state_at((0, 0)), atol=0)


# --------------------------------------------------- sparse vs dense (torch)

@pytest.mark.parametrize("layers", [([3], 3), ([3, 3], 5)])
def test_sparse_matches_dense_reference(ac, layers):
    ks, patch = layers
    rng = np.random.default_rng(5)
    d, G, steps = 3, 40, 3
    ws, _ = conv_params(rng, [2 * d] + [8] * (len(ks) - 1) + [2 * d], ks, bias=False)
    bs = [None] * len(ks)
    coords = np.concatenate([blob(6, 14, 15), blob(3, 24, 22), np.array([[19, 26, 0]])])
    states = rand_states(rng, len(coords), d)
    eng = ac.Engine(d, background="zero", threshold=0.0, gamma_decay=0.05, patch=patch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # exact setting: no warning expected
        eng.set_model(ac.ConvModel(ws, bs, activation="tanh"))
    eng.add_particles(coords, states)
    psi = np.zeros((G, G, d), np.complex128)
    psi[coords[:, 1], coords[:, 0]] = states
    for _ in range(steps):
        eng.step()
        delta = x_to_delta(torch_conv_stack(field_to_x(psi.astype(np.complex64)), ws, bs, "tanh"), d)
        psi, _ = np_rule(psi, delta, 0.05)
    np.testing.assert_allclose(eng.to_dense((0, 0, G, G)), psi, atol=TOL, rtol=0)
    # everything non-zero is matter; nothing else is
    assert eng.get_matter_count() == int(np.count_nonzero(np.any(psi != 0, axis=-1)))


def test_sparse_periodic_matches_dense_periodic(ac):
    rng = np.random.default_rng(6)
    d, G = 2, 9
    ws, _ = conv_params(rng, [4, 4], [3], bias=False)
    coords = np.array([[0, 0, 0], [8, 4, 0], [4, 8, 0], [3, 3, 0]], np.int64)
    states = rand_states(rng, 4, d)
    eng = ac.Engine(d, grid_size=G, extent="periodic", background="zero", threshold=0.0)
    eng.set_model(ac.ConvModel(ws))
    eng.add_particles(coords, states)
    psi = np.zeros((G, G, d), np.complex128)
    psi[coords[:, 1], coords[:, 0]] = states
    for _ in range(3):
        eng.step()
        delta = x_to_delta(torch_conv_stack(field_to_x(psi.astype(np.complex64)), ws, [None], periodic=True), d)
        psi, _ = np_rule(psi, delta)
    np.testing.assert_allclose(eng.to_dense((0, 0, G, G)), psi, atol=TOL, rtol=0)
    c, _ = eng.matter()
    assert c[:, :2].min() >= 0 and c[:, :2].max() < G


@pytest.mark.parametrize("G", [1, 2, 3])
def test_periodic_tiny_grids(ac, G):
    """Grids smaller than the patch: neighbours wrap onto the same cells, sparse == dense."""
    rng = np.random.default_rng(16)
    d = 2
    ws, _ = conv_params(rng, [4, 4], [3], bias=False)
    psi0 = rand_states(rng, G * G, d).reshape(G, G, d)
    sp = ac.Engine(d, grid_size=G, extent="periodic", background="zero", threshold=0.0)
    sp.set_model(ac.ConvModel(ws))
    sp.add_particles(blob(G), psi0.reshape(-1, d))
    de = ac.DenseEngine(G, d, extent="periodic")
    de.set_model(ac.ConvModel(ws))
    de.set_state(psi0)
    sp.step(2)
    de.step(2)
    assert sp.get_matter_count() == G * G
    np.testing.assert_allclose(sp.to_dense((0, 0, G, G)), de.get_state(), atol=TOL, rtol=0)


def test_bounded_zero_extent(ac):
    eng = ac.Engine(1, grid_size=8, extent="zero", threshold=0.0)
    eng.set_model(ac.ZeroModel())
    eng.add_particle((0, 0), [1.0])
    with pytest.raises(ValueError):
        eng.add_particle((8, 0), [1.0])
    with pytest.raises(ValueError):
        eng.add_particles([[3, 3, 0], [-1, 2, 0]], [[1.0], [1.0]])
    assert eng.get_matter_count() == 1
    assert eng.step() == 4                         # the Moore neighbourhood clipped to the window
    np.testing.assert_array_equal(eng.get_state_at((-1, 0)), [0])
    for _ in range(8):
        eng.step()
    c, _ = eng.matter()
    assert eng.get_matter_count() == 64 and c[:, :2].min() == 0 and c[:, :2].max() == 7


# ------------------------------------------------------- DenseEngine vs torch

@pytest.mark.parametrize("extent", ["zero", "periodic"])
def test_dense_engine_matches_torch(ac, extent):
    rng = np.random.default_rng(7)
    d, G = 3, 12
    ws, bs = conv_params(rng, [6, 9, 6], [3, 5])
    eng = ac.DenseEngine(G, d, gamma_decay=0.05, unitary=True, seed=3, extent=extent)
    assert eng.extent == extent and eng.grid_size == G and eng.d_state == d
    psi0 = eng.get_state()
    assert psi0.shape == (G, G, d) and psi0.dtype == np.complex64
    np.testing.assert_array_equal(psi0, ac.HarmonicVacuum(d, seed=3).region((0, 0, G, G), step=0))
    eng.set_model(ac.ConvModel(ws, bs, activation="gelu"))
    psi = psi0.astype(np.complex128)
    for _ in range(3):
        eng.step()
        delta = x_to_delta(torch_conv_stack(field_to_x(psi.astype(np.complex64)), ws, bs, "gelu",
                                            periodic=extent == "periodic"), d)
        psi, _ = np_rule(psi, delta, 0.05, True)
    assert eng.get_step_count() == 3
    np.testing.assert_allclose(eng.get_state(), psi, atol=TOL, rtol=0)


def test_dense_engine_callable_gets_whole_field(ac):
    d, G = 2, 6
    seen = []

    def model(x):
        seen.append((x.shape, x.dtype, x.flags.c_contiguous))
        return torch.from_numpy(np.full_like(x, 0.1))           # CPU torch tensors are accepted

    eng = ac.DenseEngine(G, d)
    eng.set_model(model)
    psi = eng.get_state().astype(np.complex128)
    eng.step(2)
    assert seen == [((1, 2 * d, G, G), np.float32, True)] * 2
    for _ in range(2):
        psi, _ = np_rule(psi, np.full(psi.shape, 0.1 + 0.1j))
    np.testing.assert_allclose(eng.get_state(), psi, atol=TOL)
    eng.set_state(np.ones((1, G, G, d)))                         # (1, H, W, d) and real input accepted
    np.testing.assert_array_equal(eng.get_state(), np.ones((G, G, d), np.complex64))
    eng.clear()
    assert eng.get_step_count() == 0
    np.testing.assert_array_equal(eng.get_state(), ac.HarmonicVacuum(d).region((0, 0, G, G)))


def test_dense_memory_protocol(ac):
    class Mem:
        has_memory = True

        def __init__(self):
            self.calls = []
            self.fail = False

        def __call__(self, x):
            if self.fail:
                raise KeyError("boom")
            return np.zeros_like(x)

        def commit_memory(self):
            self.calls.append("commit")

        def discard_memory(self):
            self.calls.append("discard")

        def reset_memory(self):
            self.calls.append("reset")

    m = Mem()
    eng = ac.DenseEngine(4, 1)
    eng.set_model(m)
    assert m.calls[-1:] == ["reset"]
    eng.step()
    assert m.calls[-1] == "commit"
    m.fail = True
    snap = snapshot(eng)
    with pytest.raises(KeyError):
        eng.step()
    assert m.calls[-1] == "discard"
    assert_unchanged(eng, snap)
    m.fail = False
    eng.clear()
    assert m.calls[-1] == "reset"
    # the sparse engine refuses memory models
    with pytest.raises(ValueError):
        ac.Engine(1).set_model(m)


# ------------------------------------------------------------------ tools

def test_apply_tool(ac):
    d, G = 2, 16
    eng = ac.DenseEngine(G, d, seed=1)
    psi = eng.get_state().astype(np.complex128)
    eng.apply_tool("vortex", {"x": 8, "y": 7, "radius": 4, "strength": 2})
    yy, xx = np.mgrid[0:G, 0:G]
    inside = (xx - 8) ** 2 + (yy - 7) ** 2 <= 16
    theta = np.arctan2(yy - 7, xx - 8)
    exp = np.where(inside[..., None], psi * np.exp(2j * theta)[..., None], psi)
    np.testing.assert_allclose(eng.get_state(), exp, atol=TOL)
    psi = eng.get_state().astype(np.complex128)
    eng.apply_tool("wave", {"x": 3.5, "y": 2, "radius": 5, "strength": 0.7, "angle": 0.4})
    inside = (xx - 3.5) ** 2 + (yy - 2) ** 2 <= 25
    ph = 0.7 * ((xx - 3.5) * math.cos(0.4) + (yy - 2) * math.sin(0.4))
    exp = np.where(inside[..., None], psi * np.exp(1j * ph)[..., None], psi)
    np.testing.assert_allclose(eng.get_state(), exp, atol=TOL)
    psi = eng.get_state().astype(np.complex128)
    eng.apply_tool("collapse", {"strength": 0.5})                  # defaults: centre (8, 8), radius 2
    inside = (xx - 8) ** 2 + (yy - 8) ** 2 <= 4
    k = np.argmax(np.abs(psi), axis=-1)
    f = np.where(np.arange(d)[None, None, :] == k[..., None], 1.0, 0.5)
    new = psi * f
    new *= (np.linalg.norm(psi, axis=-1) / np.linalg.norm(new, axis=-1))[..., None]
    exp = np.where(inside[..., None], new, psi)
    np.testing.assert_allclose(eng.get_state(), exp, atol=TOL)


@pytest.mark.parametrize("action,params,exc", [
    ("explode", {}, ValueError),
    ("vortex", {"x": 1, "bogus": 2}, ValueError),
    ("vortex", {"x": float("nan")}, ValueError),
    ("wave", {"angle": float("inf")}, ValueError),
    ("wave", {"radius": 0}, ValueError),
    ("collapse", {"radius": -2}, ValueError),
    ("collapse", {"strength": 1.5}, ValueError),
    ("vortex", {"x": "centre"}, (TypeError, ValueError)),
    ("vortex", [1, 2], (TypeError, ValueError)),
])
def test_apply_tool_bad_input(ac, action, params, exc):
    eng = ac.DenseEngine(8, 2)
    snap = snapshot(eng)
    with pytest.raises(exc):
        eng.apply_tool(action, params)
    assert_unchanged(eng, snap)


def test_visualization(ac):
    eng = ac.DenseEngine(8, 2)
    dens = eng.compute_visualization("density")
    assert dens.shape == (8, 8) and dens.dtype == np.float32
    np.testing.assert_allclose(dens, np.sum(np.abs(eng.get_state()) ** 2, axis=-1), rtol=1e-5)
    ph = eng.compute_visualization("phase", (2, 1, 6, 4), channel=1)
    np.testing.assert_allclose(ph, np.angle(eng.get_state()[1:4, 2:6, 1]), atol=1e-5)
    with pytest.raises(ValueError):
        eng.compute_visualization("nope")
    with pytest.raises(ValueError):
        eng.compute_visualization("real", channel=2)
    sp = ac.Engine(2, grid_size=8)
    sp.set_model(ac.ZeroModel())
    sp.add_particle((1, 1), [1, 0])
    np.testing.assert_allclose(sp.compute_visualization("density"),
                               np.sum(np.abs(sp.to_dense((0, 0, 8, 8))) ** 2, axis=-1), rtol=1e-5)
    with pytest.raises(ValueError):
        sp.compute_visualization("real", channel=-1)


# ----------------------------------------------------------- exactness warnings

def test_exactness_warnings(ac):
    rng = np.random.default_rng(8)
    ws, bs = conv_params(rng, [4, 4], [3])
    with pytest.warns(RuntimeWarning, match="zero"):
        ac.Engine(2, background="zero").set_model(ac.ConvModel(ws, bs))
    ws5, _ = conv_params(rng, [4, 4], [5], bias=False)
    with pytest.warns(RuntimeWarning, match="receptive"):
        ac.Engine(2, background="vacuum", patch=3).set_model(ac.ConvModel(ws5))
    with pytest.warns(RuntimeWarning, match="zero"):                # probed callable
        ac.Engine(2, background="zero").set_model(lambda b: b + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ac.Engine(2, background="vacuum").set_model(ac.ConvModel(ws, bs))   # biases are fine on the vacuum
        ac.Engine(2, background="zero", patch=5).set_model(ac.ConvModel(ws5))
        ac.Engine(2, background="zero").set_model(lambda b: 0.5 * b)


# ------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,exc", [
    ({"d_state": 0}, ValueError),
    ({"d_state": -3}, ValueError),
    ({"d_state": 10 ** 6}, ValueError),
    ({"d_state": "4"}, TypeError),
    ({"d_state": 4, "grid_size": 10 ** 9}, ValueError),
    ({"d_state": 4, "grid_size": 0}, ValueError),
    ({"d_state": 4, "background": "foo"}, ValueError),
    ({"d_state": 4, "extent": "foo"}, ValueError),
    ({"d_state": 4, "patch": 4}, ValueError),
    ({"d_state": 4, "patch": 0}, ValueError),
    ({"d_state": 4, "patch": 1001}, ValueError),
    ({"d_state": 4, "threshold": float("nan")}, ValueError),
    ({"d_state": 4, "gamma_decay": -1.0}, ValueError),
    ({"d_state": 4, "gamma_decay": float("inf")}, ValueError),
    ({"d_state": 4, "vacuum_strength": float("nan")}, ValueError),
    ({"d_state": 4, "seed": -1}, ValueError),
    ({"d_state": 4, "seed": 2 ** 64}, ValueError),
    ({"d_state": 4, "device": "tpu"}, ValueError),
    ({"d_state": 4, "device": "cuda:x"}, ValueError),
])
def test_engine_bad_constructor(ac, kwargs, exc):
    with pytest.raises(exc):
        ac.Engine(**kwargs)


@pytest.mark.parametrize("args,kwargs,exc", [
    ((10 ** 9, 4), {}, ValueError),
    ((0, 4), {}, ValueError),
    ((16, 0), {}, ValueError),
    ((2 ** 15, 4096), {}, ValueError),            # H*W*d far beyond the dense limit
    ((16, 4), {"extent": "foo"}, ValueError),
    ((16, 4), {"extent": None}, (TypeError, ValueError)),
    ((16, 4), {"gamma_decay": float("nan")}, ValueError),
    ((16, 4), {"seed": -5}, ValueError),
    ((16, 4), {"device": "gpu"}, ValueError),
])
def test_dense_bad_constructor(ac, args, kwargs, exc):
    with pytest.raises(exc):
        ac.DenseEngine(*args, **kwargs)


def test_engine_attributes(ac):
    eng = ac.Engine(4, "cuda:1", 32, background="zero", extent="periodic", threshold=0.5,
                    gamma_decay=0.25, unitary=True, seed=2 ** 64 - 1, vacuum_strength=0.2, patch=5)
    assert (eng.d_state, eng.device, eng.grid_size, eng.background, eng.extent, eng.threshold,
            eng.gamma_decay, eng.unitary, eng.seed, eng.vacuum_strength, eng.patch) == \
        (4, "cuda:1", 32, "zero", "periodic", 0.5, 0.25, True, 2 ** 64 - 1, 0.2, 5)
    assert ac.Engine(4).extent is None and ac.Engine(4).device == "cpu"
    with pytest.raises(AttributeError):
        eng.d_state = 5


@pytest.fixture
def populated(ac):
    rng = np.random.default_rng(9)
    eng = ac.Engine(3, grid_size=32, extent="zero")
    eng.set_model(ac.ZeroModel())
    eng.add_particles(blob(4, 10, 10), rand_states(rng, 16, 3))
    eng.step()
    return eng


BAD_PARTICLES = [
    ("coords (N,4)", lambda d: (np.zeros((2, 4), np.int64), np.zeros((2, d), np.complex64)), ValueError),
    ("states (N,d+1)", lambda d: ([[1, 1, 0], [2, 2, 0]], np.zeros((2, d + 1), np.complex64)), ValueError),
    ("N mismatch", lambda d: ([[1, 1, 0], [2, 2, 0]], np.zeros((3, d), np.complex64)), ValueError),
    ("float coords", lambda d: ([[1.5, 1, 0]], np.zeros((1, d), np.complex64)), (TypeError, ValueError)),
    ("string states", lambda d: ([[1, 1, 0]], [["a"] * d]), (TypeError, ValueError)),
    ("nan state", lambda d: ([[1, 1, 0]], np.full((1, d), np.nan, np.complex64)), ValueError),
    ("inf state", lambda d: ([[1, 1, 0]], np.full((1, d), 1j * np.inf, np.complex64)), ValueError),
    ("outside window", lambda d: ([[1, 1, 0], [40, 1, 0]], np.ones((2, d), np.complex64)), ValueError),
    ("huge coord", lambda d: ([[2 ** 62, 0, 0]], np.ones((1, d), np.complex64)), (OverflowError, ValueError)),
]


@pytest.mark.parametrize("name,make,exc", BAD_PARTICLES, ids=[b[0] for b in BAD_PARTICLES])
def test_add_particles_bad_input(ac, populated, name, make, exc):
    snap = snapshot(populated)
    coords, states = make(3)
    with pytest.raises(exc):
        populated.add_particles(coords, states)
    assert_unchanged(populated, snap)


def test_engine_bad_calls(ac, populated):
    eng = populated
    snap = snapshot(eng)
    with pytest.raises(ValueError):
        eng.add_particle((1, 1), np.zeros(4, np.complex64))
    with pytest.raises(ValueError):
        eng.add_particle((1, 1), [np.nan, 0, 0])
    with pytest.raises((TypeError, ValueError)):
        eng.add_particle("here", [0, 0, 0])
    with pytest.raises((TypeError, ValueError)):
        eng.get_states(np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError):
        eng.to_dense((0, 0, 10 ** 6, 10 ** 6))                     # roi too big
    with pytest.raises(ValueError):
        eng.to_dense((5, 5, 0, 0))
    with pytest.raises((TypeError, ValueError)):
        eng.to_dense((0, 0, 4))
    with pytest.raises(ValueError):
        eng.activate_neighborhood((3, 3), radius=-1)
    with pytest.raises(ValueError):
        eng.query_radius((3, 3), -1.0)
    with pytest.raises(ValueError):
        eng.step(-1)
    with pytest.raises(TypeError):
        eng.set_model(42)
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError):
        eng.set_model(ac.ConvModel(conv_params(rng, [4, 4], [3])[0]))   # 4 channels, engine needs 6
    assert_unchanged(eng, snap)
    assert eng.has_model()
    assert eng.step(0) == eng.get_matter_count()


def test_engine_basic_api(ac):
    eng = ac.Engine(2, background="zero", threshold=0.0)
    assert not eng.has_model()
    with pytest.raises(RuntimeError):
        eng.step()
    eng.set_model(ac.ZeroModel())
    eng.add_particle((0, 0, 0), [1, 0])
    eng.add_particle(ac.Coord3D(2, 0, 0), np.array([0, 2j]))
    assert eng.get_matter_count() == 2
    np.testing.assert_array_equal(eng.get_states([[0, 0, 0], [2, 0, 0], [9, 9, 0]]),
                                  np.array([[1, 0], [0, 2j], [0, 0]], np.complex64))
    eng.activate_neighborhood((0, 0), radius=1)
    assert eng.get_matter_count() == 10                             # zeros inserted at absent cells
    q = eng.query_radius((0, 0, 0), 1.0)
    assert q.shape == (5, 3) and q.dtype == np.int64
    assert eng.get_active_coords().shape == (10, 3)
    assert eng.step_native() == 2                                   # zero cells drop out (n = 0)
    assert eng.get_step_count() == 1
    eng.clear()
    assert eng.get_matter_count() == 0 and eng.get_step_count() == 0 and eng.has_model()
    eng.set_model(None)
    assert not eng.has_model()


# --------------------------------------------- callable models that misbehave

def _bad_models(d):
    class Boom(Exception):
        pass

    def raises(b):
        raise Boom("model exploded")

    return [
        ("wrong shape", lambda b: np.zeros((b.shape[0], 2 * d, 2, 2), np.float32), ValueError),
        ("wrong batch", lambda b: np.zeros((1,) + b.shape[1:], np.float32), ValueError),
        ("int dtype", lambda b: np.zeros(b.shape, np.int64), ValueError),
        ("complex dtype", lambda b: np.zeros(b.shape, np.complex64), ValueError),
        ("none", lambda b: None, (ValueError, TypeError)),
        ("nan", lambda b: np.full(b.shape, np.nan, np.float32), ValueError),
        ("raises", raises, Boom),
    ]


@pytest.mark.parametrize("idx", range(7), ids=[m[0] for m in _bad_models(2)])
def test_engine_bad_callable_changes_nothing(ac, idx):
    d = 2
    name, model, exc = _bad_models(d)[idx]
    rng = np.random.default_rng(11)
    eng = ac.Engine(d)
    eng.set_model(ac.ZeroModel())
    eng.add_particles(blob(5), rand_states(rng, 25, d))
    eng.step()
    eng.set_model(model)
    snap = snapshot(eng)
    with pytest.raises(exc) as info:
        eng.step()
    if exc is ValueError:
        assert str(info.value)
    assert_unchanged(eng, snap)
    assert eng.get_last_error()
    eng.set_model(ac.ZeroModel())                                    # still usable
    eng.step()
    assert eng.get_step_count() == 2


@pytest.mark.parametrize("idx", range(7), ids=[m[0] for m in _bad_models(2)])
def test_dense_bad_callable_changes_nothing(ac, idx):
    name, model, exc = _bad_models(2)[idx]
    if name == "wrong batch":
        return                                                       # the dense batch is always 1
    eng = ac.DenseEngine(8, 2)
    eng.set_model(ac.ZeroModel())
    eng.step()
    eng.set_model(model)
    snap = snapshot(eng)
    with pytest.raises(exc):
        eng.step()
    assert_unchanged(eng, snap)


def test_failure_in_a_later_chunk_changes_nothing(ac):
    """The model fails on its second call of a step: nothing of the first chunk is applied."""
    d = 1
    calls = []

    def model(b):
        calls.append(b.shape[0])
        if len(calls) == 2:
            raise RuntimeError("second chunk fails")
        return np.full(b.shape, 0.1, np.float32)

    eng = ac.Engine(d, background="zero", threshold=0.0)
    eng.set_model(ac.ZeroModel())
    eng.add_particles(blob(100), np.ones((10000, d), np.complex64))  # > 4096 cells: several chunks
    snap = snapshot(eng)
    eng.set_model(model)
    with pytest.raises(RuntimeError, match="second chunk"):
        eng.step()
    assert_unchanged(eng, snap)
    assert sum(calls) < 10404 and all(c <= 4096 for c in calls)


def test_callable_batch_is_a_copy(ac):
    """Writing into the batch the model receives does not touch the engine."""
    d = 2

    def vandal(b):
        b[...] = 1e30
        return np.zeros_like(b)

    eng = ac.Engine(d, background="zero", threshold=0.0)
    eng.set_model(vandal)
    eng.add_particle((0, 0), [3, 4j])
    eng.step()
    np.testing.assert_allclose(eng.get_state_at((0, 0)), [0.6, 0.8j], atol=TOL)


def test_dense_periodic_needs_known_radius(ac):
    eng = ac.DenseEngine(8, 1, extent="periodic")
    snap = snapshot(eng)
    with pytest.raises(ValueError):
        eng.set_model(lambda x: np.zeros_like(x))
        eng.step()
    assert_unchanged(eng, snap)

    class Local:
        receptive_radius = 1

        def __call__(self, x):
            return np.zeros_like(x)

    eng.set_model(Local())
    eng.step()
    assert eng.get_step_count() == 1


def test_dense_bad_state(ac):
    eng = ac.DenseEngine(6, 2)
    snap = snapshot(eng)
    for bad, exc in [(np.zeros((6, 6, 3)), ValueError), (np.zeros((2, 6, 6, 2)), ValueError),
                     (np.full((6, 6, 2), np.nan), ValueError), (np.zeros((36, 2)), ValueError),
                     ("psi", (TypeError, ValueError))]:
        with pytest.raises(exc):
            eng.set_state(bad)
    with pytest.raises(ValueError):
        eng.step(-2)
    with pytest.raises(RuntimeError):
        eng.step()                                                   # no model
    with pytest.raises(TypeError):
        eng.set_model("model")
    with pytest.raises(ValueError):
        eng.set_model(ac.ConvModel([np.zeros((2, 2, 3, 3), np.float32)]))   # 2 channels != 4
    assert_unchanged(eng, snap)


def test_load_model_failure_keeps_engine(ac, tmp_path):
    for eng in (ac.Engine(2), ac.DenseEngine(8, 2)):
        eng.set_model(ac.ZeroModel())
        snap = snapshot(eng)
        assert eng.load_model(str(tmp_path / "missing.pt")) is False
        assert "missing.pt" in eng.get_last_error() or "not found" in eng.get_last_error().lower()
        bad = tmp_path / "garbage.pt"
        bad.write_bytes(b"not a torchscript file")
        assert eng.load_model(str(bad)) is False
        assert eng.get_last_error()
        assert_unchanged(eng, snap)
        assert eng.has_model()
        eng.step()


def test_load_model_roundtrip(ac, tmp_path):
    """A scripted conv net saved with torch.jit goes through the loader (callable or capsule)."""
    d = 2
    rng = np.random.default_rng(12)
    ws, bs = conv_params(rng, [4, 4], [3], bias=False)
    net = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)
    net.weight.data = torch.from_numpy(ws[0])
    path = str(tmp_path / "conv.pt")
    torch.jit.save(torch.jit.script(net), path)
    ref = ac.DenseEngine(8, d)
    ref.set_model(ac.ConvModel(ws))
    eng = ac.DenseEngine(8, d)
    ok = eng.load_model(path)
    assert ok, eng.get_last_error()
    eng.step(2)
    ref.step(2)
    np.testing.assert_allclose(eng.get_state(), ref.get_state(), atol=TOL)


# ------------------------------------------------------- C backend specifics

def test_capsule_model(c_backend, tmp_path):
    """Models from the LibTorch shim arrive as 'atheria_core.model' capsules."""
    from atheria_core import _torch_support
    shim = _torch_support.shim_path()
    if shim is None or not hasattr(c_backend, "_torch_load"):
        pytest.skip("LibTorch shim not built / not exposed")
    d = 2
    rng = np.random.default_rng(13)
    ws, _ = conv_params(rng, [4, 4], [3], bias=False)
    net = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)
    net.weight.data = torch.from_numpy(ws[0])
    path = str(tmp_path / "conv.pt")
    torch.jit.save(torch.jit.script(net), path)
    cap = c_backend._torch_load(shim, path, receptive_radius=1, zero_preserving=1, channels=4)
    eng = c_backend.Engine(d, background="zero", threshold=0.0)
    ref = c_backend.Engine(d, background="zero", threshold=0.0)
    eng.set_model(cap)
    del cap                                                          # the engine keeps it alive
    ref.set_model(c_backend.ConvModel(ws))
    st = rand_states(rng, 9, d)
    for e in (eng, ref):
        e.add_particles(blob(3), st)
        e.step(2)
    np.testing.assert_allclose(sorted_matter(eng)[1], sorted_matter(ref)[1], atol=TOL)


def test_thread_count_invariance(c_backend):
    rng = np.random.default_rng(14)
    ws, bs = conv_params(rng, [6, 8, 6], [3, 3])
    coords = np.concatenate([blob(30), blob(5, 100, 100)])
    st = rand_states(rng, len(coords), 3)
    out = []
    try:
        for threads in (1, 2):
            c_backend.set_num_threads(threads)
            eng = c_backend.Engine(3, patch=5, gamma_decay=0.1)
            eng.set_model(c_backend.ConvModel(ws, bs))
            eng.add_particles(coords, st)
            eng.step(3)
            out.append(eng.matter())
    finally:
        c_backend.set_num_threads(2)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_step_releases_the_gil(c_backend):
    """A Python thread keeps counting while a C ConvModel step runs in the main thread."""
    rng = np.random.default_rng(15)
    ws, bs = conv_params(rng, [16, 16, 16], [3, 3])
    eng = c_backend.Engine(8, patch=5)
    eng.set_model(c_backend.ConvModel(ws, bs))
    eng.add_particles(blob(60), rand_states(rng, 3600, 8))
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    th = threading.Thread(target=spin)
    c_backend.set_num_threads(1)                                      # leave a core to the counter
    th.start()
    try:
        time.sleep(0.02)
        a, t = counter[0], time.perf_counter()
        time.sleep(0.05)                                               # sleep releases the GIL
        rate = (counter[0] - a) / (time.perf_counter() - t)
        c0, t0 = counter[0], time.perf_counter()
        n = eng.step()
        while time.perf_counter() - t0 < 0.06:                        # the step got fast: a few more
            n = eng.step()
        elapsed, c1 = time.perf_counter() - t0, counter[0]
    finally:
        stop.set()
        th.join()
        c_backend.set_num_threads(2)
    assert n > 3600 and elapsed > 0.05, elapsed
    # holding the GIL, the counter could only advance for about one switch interval
    # (5 ms); require at least 20 ms worth of counting during the step
    assert c1 - c0 > 0.02 * rate, (c1 - c0, rate, elapsed)


def test_engine_busy_while_stepping(c_backend):
    """While a step runs (GIL released), other calls on the engine raise instead of racing."""
    started, release = threading.Event(), threading.Event()

    def slow(b):
        started.set()
        release.wait(10)
        return np.zeros_like(b)

    eng = c_backend.Engine(1)
    eng.set_model(slow)
    eng.add_particle((0, 0), [1])
    th = threading.Thread(target=eng.step)
    th.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="busy"):
            eng.get_matter_count()
        with pytest.raises(RuntimeError, match="busy"):
            eng.set_model(None)
    finally:
        release.set()
        th.join()
    assert eng.get_step_count() == 1 and eng.get_matter_count() == 9

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
    # both backend modules carry the ints too (the C extension parses the same string)
    assert (ac.VERSION_MAJOR, ac.VERSION_MINOR, ac.VERSION_PATCH) == parts[:3]
    assert all(isinstance(x, int) for x in (ac.VERSION_MAJOR, ac.VERSION_MINOR, ac.VERSION_PATCH))


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


def test_generate_bulk_state_takes_any_real_tensor(ac):
    base = torch.randn(3, 12, 10, dtype=torch.float64, requires_grad=True)
    view = base.transpose(1, 2)                       # non-contiguous, float64, requires grad
    out = ac.DenseEngine(4, 1).generate_bulk_state(view, 3)
    ref = _torch_bulk(view.detach().float(), 3).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=3 * 4e-7 * float(np.abs(ref).max()))
    half = ac.DenseEngine(4, 1).generate_bulk_state(torch.ones(4, 4, dtype=torch.bfloat16), 2)
    assert half.shape == (1, 2, 4, 4) and half.dtype == np.float32 and half[0, 0, 1, 1] == 1.0


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


# --------------------------------------------------------------------------- atheria_core.compat
import atheria_core.compat as compat  # noqa: E402


@pytest.fixture(params=["c", "python"])
def orig(request, monkeypatch):
    """The compat API over one backend (the compat classes build their native engines from
    ``atheria_core._impl``, which the package sets from ATHERIA_FORCE_PYTHON at import)."""
    import importlib
    mod = importlib.import_module("atheria_core._core" if request.param == "c" else "atheria_core._fallback")
    monkeypatch.setattr(atheria_core, "_impl", mod)
    assert type(compat.Engine(1)._eng) is mod.Engine and type(compat.DenseEngine(2, 1)._eng) is mod.DenseEngine
    return compat


def _jit_file(tmp_path, d, scale=0.3, name="law.pt", raise_above=None):
    """A real TorchScript file: one 3x3 conv (2d -> 2d channels, zero padding)."""
    torch.manual_seed(1)

    class Law(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2 * d, 2 * d, 3, padding=1)
            self.limit = -1.0 if raise_above is None else float(raise_above)

        def forward(self, x):
            if self.limit >= 0.0 and bool(x.abs().max() > self.limit):
                raise RuntimeError("field too large for this law")
            return self.conv(x)

    law = Law().eval()
    with torch.no_grad():
        law.conv.weight.mul_(scale)
    path = str(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(law), path)
    return path


def _cells(n=6, d=2, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    while len(out) < n:
        x, y = (int(v) for v in rng.integers(2, 12, size=2))
        out[(x, y, 0)] = torch.tensor(rng.normal(size=d) + 1j * rng.normal(size=d), dtype=torch.complex64)
    return out


def test_coord3d_repr_and_fields(orig):
    c = orig.Coord3D(1, 2, 3)
    assert repr(c) == "Coord3D(1, 2, 3)"
    assert repr(orig.Coord3D(-10, 20, -30)) == "Coord3D(-10, 20, -30)"
    assert (c.x, c.y, c.z) == (1, 2, 3)
    c.x = 5
    assert repr(c) == "Coord3D(5, 2, 3)" and repr(orig.Coord3D()) == "Coord3D(0, 0, 0)"


def test_sparse_map_original_semantics(orig):
    m = orig.SparseMap()
    m.insert(key=3, value=1.5)
    m[4] = 2.0
    assert m.contains(key=3) and 4 in m and m[4] == 2.0
    assert m.get(key=99, default_value=7.0) == 7.0
    del m[12345]                                   # silent
    assert m.remove(key=4) is None and m.remove(4) is None
    with pytest.raises(KeyError):
        m[4]
    t64 = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    ti = torch.tensor([1, 2, 3], dtype=torch.int32)
    m.insert_tensor(orig.Coord3D(0, 0, 0), tensor=t64)
    m.insert_tensor(coord=orig.Coord3D(1, 0, 0), tensor=ti)
    a, b = m.get_tensor(orig.Coord3D(0, 0, 0)), m.get_tensor(coord=orig.Coord3D(1, 0, 0))
    assert a.dtype == torch.float64 and a.shape == (3, 4) and torch.equal(a, t64)
    assert b.dtype == torch.int32 and torch.equal(b, ti)
    assert m.get_tensor(orig.Coord3D(9, 9, 9)) is None
    assert m.size() == len(m) == 3 and not m.empty()
    assert repr(m) == "<SparseMap with 3 elements>"
    assert sorted(repr(c) for c in m.coord_keys()) == ["Coord3D(0, 0, 0)", "Coord3D(1, 0, 0)"]
    assert m.remove_coord(coord=orig.Coord3D(1, 0, 0)) is None
    assert not m.contains_coord(orig.Coord3D(1, 0, 0)) and m.contains_coord(coord=(0, 0, 0))
    m.clear()
    assert m.empty() and m.keys() == [] and m.coord_keys() == []


def test_per_cell_add_particle_loop_and_readback(orig):
    d = 3
    eng = orig.Engine(d, "cpu", 16)
    rng = np.random.default_rng(2)
    inserted = {}
    for i in range(5):
        re = torch.tensor(rng.normal(size=d), dtype=torch.float32)
        im = torch.tensor(rng.normal(size=d), dtype=torch.float32)
        state = torch.complex(re, im)
        if i == 1:
            state = state.clone().requires_grad_(False).conj()          # conjugate view
        if i == 2:
            state = torch.stack([re, im])[0]                            # real float32 tensor
        if i == 3:
            state = torch.randn(d, 2, dtype=torch.float64).requires_grad_(True)[:, 0]   # grad, strided
        coord = orig.Coord3D(i, 2 * i, 0)
        eng.add_particle(coord, state)
        inserted[(i, 2 * i, 0)] = state.detach().to(torch.complex64)
    assert eng.get_matter_count() == 5
    for (x, y, z), want in inserted.items():
        got = eng.get_state_at(orig.Coord3D(x, y, z))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.complex64
        assert got.numel() == d and tuple(got.shape) == (d,)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        assert float(got.abs().max()) > 0
    # an absent cell reads our vacuum (|psi_k| = 1 per channel), not zeros
    vac = eng.get_state_at(orig.Coord3D(40, 40, 0))
    torch.testing.assert_close(vac.abs(), torch.ones(d), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="state"):
        eng.add_particle(orig.Coord3D(0, 0, 0), torch.zeros(d + 1))
    assert eng.get_matter_count() == 5


def _expected_region(keys, radius=1):
    out = set()
    for (x, y, z) in keys:
        for dx in range(-radius, radius + 1):
            for dy in range(-radius, radius + 1):
                for dz in range(-radius, radius + 1):
                    out.add((x + dx, y + dy, z + dz))
    return out


def test_active_region_is_matter_plus_cube(orig, tmp_path):
    d = 2
    eng = orig.Engine(d, grid_size=16)
    cells = _cells(4, d)
    for k, s in cells.items():
        eng.add_particle(orig.Coord3D(*k), s)
    active = eng.get_active_coords()
    assert all(type(c).__name__ == "Coord3D" for c in active)
    assert {(c.x, c.y, c.z) for c in active} == _expected_region(cells)
    assert len(active) == len({(c.x, c.y, c.z) for c in active})
    eng.activate_neighborhood(orig.Coord3D(40, 40, 3), radius=2)
    assert {(c.x, c.y, c.z) for c in eng.get_active_coords()} == \
        _expected_region(cells) | _expected_region([(40, 40, 3)], 2)
    assert eng.get_matter_count() == 4        # activating does not create matter
    assert eng.load_model(_jit_file(tmp_path, d))
    eng.step_native()
    coords, _ = atheria_core._impl.Engine.matter(eng._eng)
    assert {(c.x, c.y, c.z) for c in eng.get_active_coords()} == _expected_region(map(tuple, coords.tolist()))
    eng.clear()
    assert eng.get_active_coords() == [] and eng.get_matter_count() == 0


def test_dense_grid_rebuilt_from_active_coords(orig):
    """The original wrapper's conversion: loop over get_active_coords(), get_state_at each."""
    d, g = 2, 16
    eng = orig.Engine(d, grid_size=g)
    cells = _cells(5, d, seed=3)
    for k, s in cells.items():
        eng.add_particle(orig.Coord3D(*k), s)
    psi = torch.zeros(1, g, g, d, dtype=torch.complex64)
    for c in eng.get_active_coords():
        if c.z == 0 and 0 <= c.x < g and 0 <= c.y < g:
            psi[0, c.y, c.x] = eng.get_state_at(c)
    vac = atheria_core._impl.HarmonicVacuum(d)
    for (x, y, z) in _expected_region(cells):
        if z != 0 or not (0 <= x < g and 0 <= y < g):
            continue
        want = cells[(x, y, z)] if (x, y, z) in cells else torch.from_numpy(vac.get_fluctuation((x, y, z), 0))
        torch.testing.assert_close(psi[0, y, x], want, rtol=0, atol=0)
    outside = np.ones((g, g), dtype=bool)
    for (x, y, z) in _expected_region(cells):
        if z == 0 and 0 <= x < g and 0 <= y < g:
            outside[y, x] = False
    assert float(psi[0][torch.from_numpy(outside)].abs().sum()) == 0.0


def test_step_without_model(orig):
    d = 2
    eng = orig.Engine(d, grid_size=8)
    cells = _cells(3, d, seed=4)
    for k, s in cells.items():
        eng.add_particle(orig.Coord3D(*k), s)
    for n in (1, 2):
        assert eng.step_native() == 3
        assert eng.get_step_count() == n
    for k, s in cells.items():
        torch.testing.assert_close(eng.get_state_at(orig.Coord3D(*k)), s, rtol=0, atol=0)
    eng.clear()
    assert eng.get_step_count() == 0
    # our own API raises instead (docs/api.md: a step without a model is almost always a failed load)
    native = atheria_core._impl.Engine(d, grid_size=8)
    with pytest.raises(RuntimeError, match="model"):
        native.step_native()


def test_compat_steps_are_the_native_engine_steps(orig, tmp_path):
    d, g = 2, 16
    path = _jit_file(tmp_path, d)
    eng = orig.Engine(d, grid_size=g)
    ref = atheria_core._impl.Engine(d, grid_size=g)
    assert eng.load_model(path) and ref.load_model(path)
    cells = _cells(5, d, seed=5)
    for k, s in cells.items():
        eng.add_particle(orig.Coord3D(*k), s)
        ref.add_particle(k, s.numpy())
    for _ in range(3):
        assert eng.step_native() == ref.step_native() == eng.get_matter_count()
    assert eng.get_step_count() == ref.get_step_count() == 3
    coords, states = ref.matter()
    for (x, y, z), want in zip(coords.tolist(), states):
        np.testing.assert_array_equal(eng.get_state_at(orig.Coord3D(x, y, z)).numpy(), want)


def test_compute_visualization_matter_only_tensors(orig):
    d, g = 2, 12
    eng = orig.Engine(d, grid_size=g)
    cells = _cells(6, d, seed=6)
    for k, s in cells.items():
        eng.add_particle(orig.Coord3D(*k), s)
    eng.add_particle(orig.Coord3D(3, 3, 1), torch.ones(d))       # z != 0: not shown
    eng.add_particle(orig.Coord3D(g + 2, 1, 0), torch.ones(d))   # outside the window: not shown
    field = np.zeros((g, g, d), dtype=np.complex64)
    for (x, y, _), s in cells.items():
        field[y, x] = s.numpy()
    matter = np.any(field != 0, axis=2)
    dens = eng.compute_visualization("density")
    assert isinstance(dens, torch.Tensor) and dens.dtype == torch.float32 and dens.shape == (g, g)
    want = (np.abs(field) ** 2).sum(-1)
    np.testing.assert_allclose(dens.numpy(), want, rtol=1e-6)
    assert float(dens.numpy()[~matter].sum()) == 0.0                 # no vacuum
    np.testing.assert_array_equal(eng.compute_visualization("energy").numpy(), dens.numpy())
    phase = eng.compute_visualization("phase").numpy()
    np.testing.assert_allclose(phase, np.angle(field[..., 0]), atol=1e-6)
    holo = eng.compute_visualization("holographic").numpy()
    assert holo.shape == (g, g, 3)
    np.testing.assert_allclose(holo[matter], _torch_holographic(field)[matter], atol=2e-7)
    assert float(np.abs(holo[~matter]).sum()) == 0.0                 # absent cells are 0
    bulk = eng.compute_visualization("holographic_bulk").numpy()
    ref = _torch_holographic_bulk(field)
    np.testing.assert_allclose(bulk, ref, rtol=1e-6, atol=1e-6 * float(ref.max()))
    unknown = eng.compute_visualization("no_such_view")
    assert unknown.shape == (g, g) and float(unknown.abs().sum()) == 0.0


def test_query_radius_is_an_int_box(orig):
    eng = orig.Engine(1, grid_size=16)
    pts = [(5, 5, 0), (7, 7, 0), (7, 3, 0), (8, 5, 0), (5, 5, 2), (6, 4, 1)]
    for p in pts:
        eng.add_particle(orig.Coord3D(*p), torch.ones(1))
    got = eng.query_radius(orig.Coord3D(5, 5, 0), 2)
    assert all(type(c).__name__ == "Coord3D" for c in got)
    want = {p for p in pts if max(abs(p[0] - 5), abs(p[1] - 5), abs(p[2])) <= 2}
    assert {(c.x, c.y, c.z) for c in got} == want == {(5, 5, 0), (7, 7, 0), (7, 3, 0), (5, 5, 2), (6, 4, 1)}
    assert eng.query_radius(orig.Coord3D(50, 50, 0), 1) == []


def test_dense_engine_round_trips_and_return_values(orig, tmp_path):
    g, d = 8, 2
    de = orig.DenseEngine(g, d, "cpu")
    st = de.get_state()
    assert isinstance(st, torch.Tensor) and st.dtype == torch.complex64 and tuple(st.shape) == (1, d, g, g)
    assert float(st.abs().sum()) == 0.0                              # starts at zeros
    assert de.step() == 0 and de.get_step_count() == 0               # no model
    psi = torch.randn(1, d, g, g, dtype=torch.complex64)
    de.set_state(psi)
    assert torch.equal(de.get_state(), psi)
    de.set_state(psi[0] * 2)                                         # [C, H, W]
    assert torch.equal(de.get_state(), psi * 2)
    de.set_state(psi.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2))   # non-contiguous
    assert torch.equal(de.get_state(), psi)
    with pytest.raises(ValueError, match="new_state"):
        de.set_state(torch.zeros(1, d + 1, g, g))
    path = _jit_file(tmp_path, d)
    assert de.load_model(path)
    ref = atheria_core._impl.DenseEngine(g, d)
    assert ref.load_model(path)
    ref.set_state(psi[0].permute(1, 2, 0).numpy())
    assert de.step() == g * g and de.get_step_count() == 1
    ref.step()
    np.testing.assert_array_equal(de.get_state()[0].permute(1, 2, 0).numpy(), ref.get_state())
    assert de.apply_tool("collapse", {"x": 3.0, "y": 4.0, "radius": 2.0, "strength": 0.5}) is True
    assert de.apply_tool("no_such_tool", {}) is False


def test_dense_engine_step_error_is_minus_one(orig, tmp_path):
    g, d = 6, 1
    de = orig.DenseEngine(g, d)
    assert de.load_model(_jit_file(tmp_path, d, raise_above=5.0))
    big = torch.full((1, d, g, g), 10.0 + 0j, dtype=torch.complex64)
    de.set_state(big)
    assert de.step() == -1
    assert torch.equal(de.get_state(), big) and de.get_step_count() == 0
    assert "too large" in de.get_last_error()


@pytest.mark.parametrize("shape", [(10, 9), (3, 10, 9), (1, 2, 10, 9)])
def test_compat_generate_bulk_state_vs_torch(orig, shape):
    base = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    de = orig.DenseEngine(4, 1)
    out = de.generate_bulk_state(base, 4)
    ref = _torch_bulk(base, 4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-6 * float(ref.abs().max()))
    torch.testing.assert_close(de.generate_bulk_state(base, 0), _torch_bulk(base, 1))   # depth <= 1: the field


class _OriginalWrapperPort:
    """The original NativeEngineWrapper's loop, ported: load -> particles from a dense grid ->
    step_native -> dense grid from get_active_coords/get_state_at -> compute_visualization."""

    def __init__(self, ac, grid_size, d_state):
        self.ac, self.grid_size, self.d_state = ac, grid_size, d_state
        self.native_engine = ac.Engine(d_state, "cpu", grid_size)
        self.model_loaded = False
        self.step_count = 0
        self.psi = None

    def load_model(self, path):
        self.model_loaded = self.native_engine.load_model(path)
        return self.model_loaded

    def initialize_from_dense(self, psi, threshold=1e-6):
        for y in range(self.grid_size):
            for x in range(self.grid_size):
                state = psi[0, y, x]
                if state.abs().max().item() > threshold:
                    self.native_engine.add_particle(self.ac.Coord3D(x, y, 0), state)
        self.psi = psi.clone()

    def evolve_internal_state(self):
        if not self.model_loaded:
            return
        self.native_engine.step_native()
        self.step_count += 1
        self._update_dense_state_from_sparse()

    def _update_dense_state_from_sparse(self):
        for coord in self.native_engine.get_active_coords():
            if coord.z != 0:
                continue
            s = self.native_engine.get_state_at(coord)
            if s.shape == (self.d_state,) and 0 <= coord.x < self.grid_size and 0 <= coord.y < self.grid_size:
                self.psi[0, coord.y, coord.x] = s

    def get_visualization_data(self, viz_type="density"):
        return self.native_engine.compute_visualization(viz_type)


def test_original_wrapper_loop_reads_back_the_stepped_state(orig, tmp_path):
    g, d = 16, 2
    path = _jit_file(tmp_path, d)
    psi0 = torch.zeros(1, g, g, d, dtype=torch.complex64)
    psi0[0, 5:9, 4:10] = torch.randn(4, 6, d, dtype=torch.complex64, generator=torch.Generator().manual_seed(9))
    w = _OriginalWrapperPort(orig, g, d)
    assert w.load_model(path)
    w.initialize_from_dense(psi0)
    ref = atheria_core._impl.Engine(d, grid_size=g)     # the same steps, on our API directly
    assert ref.load_model(path)
    ys, xs = np.nonzero(np.any(psi0[0].numpy() != 0, axis=2))
    ref.add_particles(np.stack([xs, ys, np.zeros_like(xs)], 1), psi0[0].numpy()[ys, xs])
    for _ in range(4):
        w.evolve_internal_state()
    ref.step(4)
    assert w.step_count == w.native_engine.get_step_count() == ref.get_step_count() == 4
    coords, states = ref.matter()
    inside = (coords[:, 0] >= 0) & (coords[:, 0] < g) & (coords[:, 1] >= 0) & (coords[:, 1] < g)
    got = w.psi[0].numpy()[coords[inside, 1], coords[inside, 0]]
    np.testing.assert_array_equal(got, states[inside])
    # and it is not the initial grid
    assert float(np.abs(w.psi[0, 5:9, 4:10].numpy() - psi0[0, 5:9, 4:10].numpy()).max()) > 1e-3
    viz = w.get_visualization_data("density")
    assert isinstance(viz, torch.Tensor) and viz.shape == (g, g)
    want = np.zeros((g, g), dtype=np.float64)
    want[coords[inside, 1], coords[inside, 0]] = (np.abs(states[inside]) ** 2).sum(-1)
    np.testing.assert_allclose(viz.numpy(), want, rtol=1e-6)


# --------------------------------------------------------------------------- the test that counts
@pytest.mark.parametrize("force_python", ["0", "1"])
def test_unmodified_original_client_runs_with_atheria_api_original(tmp_path, force_python):
    path = _jit_file(tmp_path, 2)
    env = dict(os.environ, ATHERIA_API="original", ATHERIA_FORCE_PYTHON=force_python,
               PYTHONPATH=os.path.join(ROOT, "python"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "original_client.py"), path],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    backend = "python" if force_python == "1" else "c"
    assert f"original client OK on backend {backend}" in run.stdout


def test_the_client_fails_on_our_api(tmp_path):
    """Without ATHERIA_API=original the same client breaks on our API: the switch is what makes it work."""
    path = _jit_file(tmp_path, 2)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), OMP_NUM_THREADS="1")
    env.pop("ATHERIA_API", None)
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "original_client.py"), path],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0


def test_atheria_api_original_top_level(tmp_path):
    code = ("import atheria_core as ac, atheria_core.compat as c; "
            "print(ac.API, ac.BACKEND, ac.Engine is c.Engine, ac.SparseMap is c.SparseMap, "
            "repr(ac.Coord3D(1, 2, 3)), hasattr(ac, 'HarmonicVacuum'))")
    for force, backend in (("0", "c"), ("1", "python")):
        env = dict(os.environ, ATHERIA_API="original", ATHERIA_FORCE_PYTHON=force,
                   PYTHONPATH=os.path.join(ROOT, "python"))
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["original", backend, "True", "True", "Coord3D(1,", "2,", "3)", "True"]
    assert atheria_core.API == "native" and atheria_core.Engine is not compat.Engine


def test_our_wrapper_still_runs_under_atheria_api_original(tmp_path):
    path = _jit_file(tmp_path, 2)
    code = ("import sys, atheria_core as ac\n"
            "from atheria_core.wrapper import NativeEngineWrapper\n"
            "w = NativeEngineWrapper(8, 2, 'cpu', engine='dense')\n"
            "assert w.load_model(sys.argv[1]), w.last_error\n"
            "w.evolve_step(2)\n"
            "assert w.get_step_count() == 2 and w.get_dense_state().shape == (8, 8, 2)\n"
            "print(ac.API, type(w.engine).__module__)\n")
    env = dict(os.environ, ATHERIA_API="original", PYTHONPATH=os.path.join(ROOT, "python"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[0] == "original" and "compat" not in run.stdout

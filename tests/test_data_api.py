"""API conformance of Coord3D, SparseMap and HarmonicVacuum on both backends.

Every test takes the ``ac`` fixture (tests/conftest.py): the C extension
``atheria_core._core`` or the pure-Python ``atheria_core._fallback``.  Vacuum
values are checked against an independent transcription of DESIGN.md §3.2
written here (pure Python for single cells, vectorised NumPy for regions).
"""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

# --------------------------------------------------------------------------
# Reference HarmonicVacuum (DESIGN §3.2), independent of both backends
# --------------------------------------------------------------------------
M64 = (1 << 64) - 1
LIMIT = 1 << 60  # |coordinate component| <= 2**60
# DESIGN §6: out-of-range coordinates raise OverflowError or ValueError
OUT_OF_RANGE = (OverflowError, ValueError)


def ref_mix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_cell(seed, x, y, z, step, d, strength=0.1):
    """(d,) complex64 vacuum of one cell, straight from the DESIGN formula."""
    h = ref_mix(seed & M64)
    for v in (x, y, z, step):
        h = ref_mix(h ^ (v & M64))
    out = np.empty(d, np.complex64)
    for k in range(d):
        hk = ref_mix(h ^ k)
        u1 = ((hk >> 11) + 1) * 2.0 ** -53
        u2 = (ref_mix(hk) >> 11) * 2.0 ** -53
        g = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        n = strength * g
        out[k] = complex(np.float32(math.cos(n)), np.float32(math.sin(n)))
    return out


def _np_mix(z):
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def ref_region(seed, roi, step, z, d, strength=0.1):
    """(h, w, d) complex64, vectorised in NumPy uint64 (wrapping) arithmetic."""
    x0, y0, x1, y1 = roi
    ys, xs = np.meshgrid(np.arange(y0, y1, dtype=np.int64), np.arange(x0, x1, dtype=np.int64),
                         indexing="ij")
    with np.errstate(over="ignore"):
        h = np.full(xs.shape, ref_mix(seed & M64), dtype=np.uint64)
        h = _np_mix(h ^ xs.astype(np.uint64))
        h = _np_mix(h ^ ys.astype(np.uint64))
        h = _np_mix(h ^ np.uint64(z & M64))
        h = _np_mix(h ^ np.uint64(step & M64))
        hk = _np_mix(h[..., None] ^ np.arange(d, dtype=np.uint64))
        u1 = ((hk >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
        u2 = (_np_mix(hk) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    n = strength * (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2))
    out = np.empty(n.shape, np.complex64)
    out.real = np.cos(n)
    out.imag = np.sin(n)
    return out


def assert_close(a, b, tol=1e-7):
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size:
        assert np.max(np.abs(a - b)) <= tol, np.max(np.abs(a - b))


def test_reference_self_check():
    # the two reference implementations agree, and mix(0) is splitmix64's first output
    assert ref_mix(0) == 0xE220A8397B1DCDAF
    reg = ref_region(7, (-3, 5, 2, 8), 4, -1, 3, 0.2)
    for y in range(5, 8):
        for x in range(-3, 2):
            assert_close(reg[y - 5, x + 3], ref_cell(7, x, y, -1, 4, 3, 0.2), 0)


# --------------------------------------------------------------------------
# Coord3D
# --------------------------------------------------------------------------
def test_coord_basics(ac):
    c = ac.Coord3D()
    assert (c.x, c.y, c.z) == (0, 0, 0)
    c = ac.Coord3D(1, -2, 3)
    assert (c.x, c.y, c.z) == (1, -2, 3)
    c = ac.Coord3D(z=5, x=-7)
    assert c.to_tuple() == (-7, 0, 5)
    assert isinstance(c.to_tuple(), tuple)
    assert repr(ac.Coord3D(1, 2, 3)) == "Coord3D(x=1, y=2, z=3)"
    assert repr(ac.Coord3D(-1, 0, -30)) == "Coord3D(x=-1, y=0, z=-30)"
    assert list(ac.Coord3D(4, 5, 6)) == [4, 5, 6]
    x, y, z = ac.Coord3D(7, 8, 9)
    assert (x, y, z) == (7, 8, 9)
    assert ac.Coord3D(np.int64(3), np.int32(-4)).to_tuple() == (3, -4, 0)
    big = ac.Coord3D(LIMIT, -LIMIT, 0)
    assert big.to_tuple() == (LIMIT, -LIMIT, 0)


def test_coord_eq_hash(ac):
    a, b, c = ac.Coord3D(1, 2, 3), ac.Coord3D(1, 2, 3), ac.Coord3D(3, 2, 1)
    assert a == b and not (a != b)
    assert a != c and not (a == c)
    assert hash(a) == hash(b) == hash((1, 2, 3))
    assert hash(ac.Coord3D(-1, -2, 10 ** 15)) == hash((-1, -2, 10 ** 15))
    assert (a == (1, 2, 3)) is False  # NotImplemented -> identity fallback
    assert a != "Coord3D(x=1, y=2, z=3)"
    d = {a: "v"}
    assert d[b] == "v" and c not in d
    assert len({a, b, c}) == 2


def test_coord_setters(ac):
    c = ac.Coord3D(1, 2, 3)
    c.x, c.y, c.z = -10, 20, LIMIT
    assert c.to_tuple() == (-10, 20, LIMIT)
    c.y = np.int64(-5)
    assert c.y == -5 and isinstance(c.y, int)
    for bad in (1.5, "3", None, [1]):
        with pytest.raises(TypeError):
            c.x = bad
    for bad in (LIMIT + 1, -LIMIT - 1, 2 ** 63, -(2 ** 70)):
        with pytest.raises(OUT_OF_RANGE):
            c.z = bad
    assert c.to_tuple() == (-10, -5, LIMIT)  # unchanged by the failures
    with pytest.raises((AttributeError, TypeError)):
        del c.x
    assert c.x == -10


def test_coord_bad_constructor(ac):
    with pytest.raises(TypeError):
        ac.Coord3D(1.5)
    with pytest.raises(TypeError):
        ac.Coord3D("1", 2, 3)
    with pytest.raises(TypeError):
        ac.Coord3D(1, 2, 3, 4)
    with pytest.raises(TypeError):
        ac.Coord3D(w=1)
    with pytest.raises(OUT_OF_RANGE):
        ac.Coord3D(0, LIMIT + 1, 0)
    with pytest.raises(OUT_OF_RANGE):
        ac.Coord3D(2 ** 64)


def test_coord_pickle_copy(ac):
    c = ac.Coord3D(-3, 4, 2 ** 50)
    for c2 in (pickle.loads(pickle.dumps(c)), copy.copy(c), copy.deepcopy(c)):
        assert c2 == c and c2 is not c and type(c2) is type(c)
    c3 = copy.copy(c)
    c3.x = 99
    assert c.x == -3


# --------------------------------------------------------------------------
# SparseMap: scalar API
# --------------------------------------------------------------------------
def test_scalar_api(ac):
    m = ac.SparseMap()
    assert m.size() == 0 and len(m) == 0 and m.empty()
    assert m.get(5) == 0.0 and m.get(5, 2.5) == 2.5 and m.get(5, default_value=-1.0) == -1.0
    m.insert(5, 1.25)
    m.insert(-7, 3)
    m[2 ** 63 - 1] = -0.5
    m[-(2 ** 63)] = 4.0
    assert len(m) == 4 and m.size() == 4 and not m.empty()
    assert m.contains(5) and not m.contains(6)
    assert 5 in m and -7 in m and 6 not in m
    assert m[5] == 1.25 and m.get(-7) == 3.0 and isinstance(m.get(-7), float)
    assert m[2 ** 63 - 1] == -0.5 and m[-(2 ** 63)] == 4.0
    assert sorted(m.keys()) == sorted([5, -7, 2 ** 63 - 1, -(2 ** 63)])
    assert all(isinstance(k, int) for k in m.keys())
    assert sorted(m.values()) == sorted([1.25, 3.0, -0.5, 4.0])
    assert dict(zip(m.keys(), m.values()))[-7] == 3.0
    m.insert(5, 9.0)  # overwrite
    assert m[5] == 9.0 and len(m) == 4
    assert m.remove(5) is True and m.remove(5) is False
    del m[-7]
    assert -7 not in m and len(m) == 2
    with pytest.raises(KeyError):
        m[12345]
    with pytest.raises(KeyError):
        del m[12345]
    m.insert(np.int64(11), np.float32(0.5))
    assert m[11] == 0.5
    m.clear()
    assert len(m) == 0 and m.keys() == [] and m.values() == []


def test_scalar_many(ac):
    m = ac.SparseMap()
    keys = list(range(-3000, 3000, 3))
    for k in keys:
        m[k] = k / 8.0
    for k in keys[::2]:
        assert m.remove(k)
    assert len(m) == len(keys) - len(keys[::2])
    for i, k in enumerate(keys):
        assert (k in m) == (i % 2 == 1)
        if i % 2:
            assert m[k] == k / 8.0
    assert (3001 in m) is False


def test_scalar_bad_input(ac):
    m = ac.SparseMap()
    m.insert(1, 2.0)
    for bad_key in (1.5, "1", None, (1, 2)):
        with pytest.raises(TypeError):
            m.insert(bad_key, 1.0)
    with pytest.raises(OverflowError):
        m.insert(2 ** 63, 1.0)
    with pytest.raises(OverflowError):
        m[-(2 ** 63) - 1] = 1.0
    with pytest.raises(TypeError):
        m.insert(3, "x")
    with pytest.raises(TypeError):
        m[3] = None
    with pytest.raises(TypeError):
        m.get("a")
    with pytest.raises(TypeError):
        m[1.0]
    with pytest.raises(TypeError):
        "a" in m
    assert (2 ** 70) not in m  # a key that cannot be stored is simply absent
    assert m.keys() == [1] and m.values() == [2.0] and len(m) == 1


# --------------------------------------------------------------------------
# SparseMap: cell API
# --------------------------------------------------------------------------
def test_cell_api(ac):
    m = ac.SparseMap()
    assert m.d_state is None and m.cell_count() == 0
    st = np.array([1 + 2j, -3.5j, 0.25], np.complex64)
    m.insert_tensor(ac.Coord3D(1, 2, 3), st)
    assert m.d_state == 3 and m.cell_count() == 1 and len(m) == 1
    got = m.get_tensor((1, 2, 3))
    assert got.dtype == np.complex64 and got.shape == (3,)
    assert np.array_equal(got, st)
    got[0] = 99  # a copy
    assert m.get_tensor(ac.Coord3D(1, 2, 3))[0] == 1 + 2j
    assert m.contains_coord((1, 2, 3)) and m.contains_coord([1, 2, 3])
    assert m.contains_coord(np.array([1, 2, 3])) and m.contains_coord(ac.Coord3D(1, 2, 3))
    assert not m.contains_coord((1, 2)) and not m.contains_coord((3, 2, 1))
    assert ac.Coord3D(1, 2, 3) in m and (1, 2, 3) in m and (1, 2) not in m
    # 2-tuples are z = 0; real inputs accepted
    m.insert_tensor((-4, 5), [1.0, 2.0, 3.0])
    assert m.contains_coord((-4, 5, 0)) and m.contains_coord(ac.Coord3D(-4, 5))
    assert np.array_equal(m.get_tensor((-4, 5, 0)), np.array([1, 2, 3], np.complex64))
    m.insert_tensor((LIMIT, -LIMIT, LIMIT), np.array([1j, 1j, 1j], np.complex128))
    keys = m.coord_keys()
    assert all(isinstance(k, ac.Coord3D) for k in keys)
    assert {k.to_tuple() for k in keys} == {(1, 2, 3), (-4, 5, 0), (LIMIT, -LIMIT, LIMIT)}
    # overwrite
    m.insert_tensor((1, 2, 3), np.zeros(3))
    assert m.cell_count() == 3 and not np.any(m.get_tensor((1, 2, 3)))
    # scalars and cells are separate maps, size() counts both
    m.insert(1, 5.0)
    assert m.size() == 4 and len(m) == 4 and m.cell_count() == 3
    assert m.remove_coord((1, 2, 3)) is True and m.remove_coord((1, 2, 3)) is False
    with pytest.raises(KeyError):
        m.get_tensor((1, 2, 3))
    assert m.size() == 3
    m.clear()
    assert m.size() == 0 and m.cell_count() == 0 and m.coord_keys() == [] and 1 not in m


def test_cell_constructor_d_state(ac):
    m = ac.SparseMap(d_state=2)
    assert m.d_state == 2 and m.cell_count() == 0
    with pytest.raises(ValueError):
        m.insert_tensor((0, 0, 0), np.ones(3))
    assert m.cell_count() == 0 and m.d_state == 2
    m.insert_tensor((0, 0, 0), np.ones(2))
    assert ac.SparseMap(4).d_state == 4
    for bad in (0, -1, -5, 100000):
        with pytest.raises(ValueError):
            ac.SparseMap(d_state=bad)
    for bad in (2.0, "2"):
        with pytest.raises(TypeError):
            ac.SparseMap(d_state=bad)


def test_cell_bad_input(ac):
    m = ac.SparseMap()
    m.insert_tensor((1, 1, 1), np.array([1, 2], np.complex64))
    before = m.cells()

    def unchanged():
        coords, states = m.cells()
        assert np.array_equal(coords, before[0]) and np.array_equal(states, before[1])
        assert m.d_state == 2

    for bad in ([1, 2, 3], np.ones(1), np.ones((1, 2)), np.ones((2, 2)), 5.0):
        with pytest.raises(ValueError):
            m.insert_tensor((2, 2, 2), bad)  # d_state mismatch / wrong shape
    for bad in ([np.nan, 1], [1, np.inf], np.array([1, complex(0, np.nan)])):
        with pytest.raises(ValueError):
            m.insert_tensor((2, 2, 2), bad)
    with pytest.raises(ValueError):
        m.insert_tensor((1, 1, 1), [np.nan, 0])  # overwrite refused too
    for bad in (np.array(["a", "b"]), ["a", "b"], np.array([True, False]), None):
        with pytest.raises(TypeError):
            m.insert_tensor((2, 2, 2), bad)
    for bad in ((1.5, 2, 3), "ab", 5, None, 2.0):
        with pytest.raises(TypeError):
            m.insert_tensor(bad, [1, 2])
        with pytest.raises(TypeError):
            m.contains_coord(bad)
    for bad in ((1, 2, 3, 4), (1,), ()):
        with pytest.raises(ValueError):
            m.insert_tensor(bad, [1, 2])
    for bad in ((LIMIT + 1, 0, 0), (0, -(2 ** 63), 0), (0, 0, 2 ** 80)):
        with pytest.raises(OUT_OF_RANGE):
            m.insert_tensor(bad, [1, 2])
        with pytest.raises(OUT_OF_RANGE):
            m.get_tensor(bad)
        assert bad not in m
    unchanged()
    # the first insert fixes d_state only if it succeeds
    m2 = ac.SparseMap()
    with pytest.raises(ValueError):
        m2.insert_tensor((0, 0, 0), [1, np.nan, 2])
    with pytest.raises(ValueError):
        m2.insert_tensor((0, 0, 0), [])
    with pytest.raises(ValueError):
        m2.insert_tensor((0, 0, 0), np.ones((2, 2)))
    assert m2.d_state is None and m2.cell_count() == 0


def test_cell_torch_input(ac):
    torch = pytest.importorskip("torch")
    m = ac.SparseMap()
    m.insert_tensor(torch.tensor([1, 2, 3]), torch.tensor([1 + 1j, 2 - 1j], dtype=torch.complex64))
    assert np.array_equal(m.get_tensor((1, 2, 3)), np.array([1 + 1j, 2 - 1j], np.complex64))
    m.insert_many(torch.tensor([[4, 5, 6], [7, 8, 9]]), torch.ones(2, 2))
    states, found = m.get_many(torch.tensor([[4, 5, 6], [0, 0, 0]]))
    assert found.tolist() == [True, False] and np.array_equal(states[0], [1, 1])


# --------------------------------------------------------------------------
# SparseMap: bulk API
# --------------------------------------------------------------------------
def _random_cells(n, d, seed=0):
    rng = np.random.default_rng(seed)
    coords = np.unique(rng.integers(-10 ** 6, 10 ** 6, size=(n, 3)), axis=0)
    rng.shuffle(coords)
    states = (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d)))
    return coords.astype(np.int64), states.astype(np.complex64)


def test_bulk_roundtrip(ac):
    coords, states = _random_cells(20000, 3)
    m = ac.SparseMap()
    m.insert_many(coords, states)
    assert m.d_state == 3 and m.cell_count() == len(coords)
    got, found = m.get_many(coords)
    assert got.dtype == np.complex64 and got.shape == states.shape
    assert found.dtype == np.bool_ and found.shape == (len(coords),) and found.all()
    assert np.array_equal(got, states)
    c2, s2 = m.cells()
    assert c2.dtype == np.int64 and c2.shape == coords.shape and s2.dtype == np.complex64
    order = {tuple(c): i for i, c in enumerate(coords.tolist())}
    idx = np.array([order[tuple(c)] for c in c2.tolist()])
    assert np.array_equal(np.sort(idx), np.arange(len(coords)))
    assert np.array_equal(s2, states[idx])
    assert [k.to_tuple() for k in m.coord_keys()] == [tuple(c) for c in c2.tolist()]
    # remove a third, the rest stays intact
    for c in coords[::3]:
        assert m.remove_coord(tuple(c))
    got, found = m.get_many(coords)
    keep = np.ones(len(coords), bool)
    keep[::3] = False
    assert np.array_equal(found, keep)
    assert np.array_equal(got[keep], states[keep]) and not np.any(got[~keep])
    # single-cell API agrees with the bulk one
    i = int(np.flatnonzero(keep)[5])
    assert np.array_equal(m.get_tensor(coords[i]), states[i])


def test_bulk_details(ac):
    m = ac.SparseMap()
    m.insert_many([[1, 2], [3, 4]], [[1, 2], [3, 4]])  # (N, 2) coords -> z = 0
    assert m.contains_coord((1, 2, 0)) and m.contains_coord((3, 4, 0)) and m.d_state == 2
    states, found = m.get_many([[1, 2, 0], [9, 9, 9], [3, 4, 0]])
    assert found.tolist() == [True, False, True]
    assert np.array_equal(states, np.array([[1, 2], [0, 0], [3, 4]], np.complex64))
    # duplicates: the last one wins
    m.insert_many([[7, 7, 7], [8, 8, 8], [7, 7, 7]], [[1, 1], [2, 2], [3, 3]])
    assert np.array_equal(m.get_tensor((7, 7, 7)), [3, 3]) and m.cell_count() == 4
    # empty batches
    m.insert_many(np.zeros((0, 3), np.int64), np.zeros((0, 2), np.complex64))
    m.insert_many([], [])
    s, f = m.get_many(np.zeros((0, 3), np.int64))
    assert s.shape == (0, 2) and f.shape == (0,)
    assert m.cell_count() == 4
    empty = ac.SparseMap(d_state=5)
    c, s = empty.cells()
    assert c.shape == (0, 3) and c.dtype == np.int64 and s.shape == (0, 5) and s.dtype == np.complex64
    s, f = empty.get_many([[0, 0, 0]])
    assert s.shape == (1, 5) and not f.any() and not s.any()


def test_bulk_all_or_nothing(ac):
    m = ac.SparseMap()
    m.insert_many([[0, 0, 0], [1, 1, 1]], [[1, 1], [2, 2]])
    before = m.cells()

    def unchanged():
        c, s = m.cells()
        assert np.array_equal(c, before[0]) and np.array_equal(s, before[1])

    n = 1000
    coords = np.arange(3 * n, dtype=np.int64).reshape(n, 3)
    states = np.ones((n, 2), np.complex64)
    states[-1, 1] = np.nan  # the last row is bad: nothing at all may be inserted
    with pytest.raises(ValueError):
        m.insert_many(coords, states)
    unchanged()
    states[-1, 1] = 0
    bad_coords = coords.copy()
    bad_coords[-1, 0] = LIMIT + 1
    with pytest.raises(OUT_OF_RANGE):
        m.insert_many(bad_coords, states)
    unchanged()
    with pytest.raises(ValueError):
        m.insert_many(coords, states[:-1])  # N mismatch
    with pytest.raises(ValueError):
        m.insert_many(coords, np.ones((n, 3)))  # d_state mismatch
    with pytest.raises(ValueError):
        m.insert_many(coords[:, :1], states)  # (N, 1) coords
    with pytest.raises(ValueError):
        m.insert_many(np.zeros((n, 4), np.int64), states)
    with pytest.raises(ValueError):
        m.insert_many(coords[0], states[0])  # a single coordinate is not a batch
    with pytest.raises(TypeError):
        m.insert_many(coords.astype(np.float64), states)
    with pytest.raises(TypeError):
        m.insert_many([[0.5, 1, 2]], [[1, 1]])
    with pytest.raises(TypeError):
        m.insert_many(coords, np.full((n, 2), "x"))
    with pytest.raises(OUT_OF_RANGE):
        m.insert_many([[2 ** 64, 0, 0]], [[1, 1]])
    unchanged()
    with pytest.raises(TypeError):
        m.get_many(np.zeros((3, 3)))
    with pytest.raises(OUT_OF_RANGE):
        m.get_many([[0, 0, -(2 ** 62)]])
    # an absurd batch is refused before anything is allocated
    huge = np.broadcast_to(np.zeros(3, np.int64), (10 ** 10, 3))
    with pytest.raises((ValueError, MemoryError)):
        m.get_many(huge)
    unchanged()
    # the first bulk insert fixes d_state only if it succeeds
    m2 = ac.SparseMap()
    with pytest.raises(ValueError):
        m2.insert_many([[0, 0, 0]], [[np.inf, 0, 0]])
    assert m2.d_state is None and m2.cell_count() == 0


# --------------------------------------------------------------------------
# HarmonicVacuum
# --------------------------------------------------------------------------
def test_vacuum_attributes(ac):
    v = ac.HarmonicVacuum(4)
    assert v.d_state == 4 and v.seed == 0 and v.strength == pytest.approx(0.1)
    v = ac.HarmonicVacuum(2, seed=2 ** 64 - 1, strength=0.5)
    assert v.seed == 2 ** 64 - 1 and v.strength == 0.5 and v.d_state == 2
    assert ac.HarmonicVacuum(1, 5, 0).strength == 0.0
    for name, value in (("d_state", 3), ("seed", 1), ("strength", 0.2)):
        with pytest.raises(AttributeError):
            setattr(v, name, value)
    assert (v.d_state, v.seed, v.strength) == (2, 2 ** 64 - 1, 0.5)


def test_vacuum_bad_constructor(ac):
    for d in (0, -1, 4097, 10 ** 12):
        with pytest.raises((ValueError, OverflowError)):
            ac.HarmonicVacuum(d)
    for seed in (-1, 2 ** 64, -(2 ** 70)):
        with pytest.raises((ValueError, OverflowError)):
            ac.HarmonicVacuum(2, seed=seed)
    for strength in (float("nan"), float("inf"), -0.1, -float("inf")):
        with pytest.raises(ValueError):
            ac.HarmonicVacuum(2, strength=strength)
    with pytest.raises(TypeError):
        ac.HarmonicVacuum(2.0)
    with pytest.raises(TypeError):
        ac.HarmonicVacuum("2")
    with pytest.raises(TypeError):
        ac.HarmonicVacuum(2, seed=1.0)
    with pytest.raises(TypeError):
        ac.HarmonicVacuum(2, strength="big")
    with pytest.raises(TypeError):
        ac.HarmonicVacuum()


CELLS = [(0, 0, 0), (1, 2, 3), (-1, -1, -1), (-5, 17, 0), (10 ** 15, -(10 ** 12), 7),
         (LIMIT, -LIMIT, 0), (-LIMIT, LIMIT, -LIMIT), (123456789, 0, -3)]


@pytest.mark.parametrize("seed", [0, 1, 42, 2 ** 63, 2 ** 64 - 1])
def test_vacuum_cell_matches_reference(ac, seed):
    strength = 0.1 if seed != 42 else 1.3
    v = ac.HarmonicVacuum(3, seed=seed, strength=strength)
    for c in CELLS:
        for step in (0, 1, 9, 10 ** 9):
            got = v.get_fluctuation(c, step)
            assert got.dtype == np.complex64 and got.shape == (3,)
            assert_close(got, ref_cell(seed, *c, step, 3, strength))
    # coordinate forms and the default step
    assert_close(v.get_fluctuation(ac.Coord3D(4, -5, 0)), ref_cell(seed, 4, -5, 0, 0, 3, strength))
    assert_close(v.get_fluctuation((4, -5)), ref_cell(seed, 4, -5, 0, 0, 3, strength))
    assert_close(v.get_fluctuation([4, -5, 0], step=2), ref_cell(seed, 4, -5, 0, 2, 3, strength))


def test_vacuum_region_matches_reference(ac):
    for seed, roi, step, z, d in ((0, (0, 0, 16, 12), 0, 0, 2),
                                  (99, (-20, -7, 3, 9), 5, -4, 3),
                                  (2 ** 64 - 1, (10 ** 12, -(10 ** 12), 10 ** 12 + 9, -(10 ** 12) + 4), 123, 7, 1)):
        v = ac.HarmonicVacuum(d, seed=seed, strength=0.25)
        got = v.region(roi, step, z=z)
        x0, y0, x1, y1 = roi
        assert got.dtype == np.complex64 and got.shape == (y1 - y0, x1 - x0, d)
        assert_close(got, ref_region(seed, roi, step, z, d, 0.25))
        # region == single cells, indexed [y - y0, x - x0]
        for (x, y) in ((x0, y0), (x1 - 1, y1 - 1), (x0 + 1, y1 - 2)):
            assert_close(got[y - y0, x - x0], v.get_fluctuation((x, y, z), step), 0)
        # cells() agrees too
        coords = np.array([[x0, y0, z], [x1 - 1, y0, z], [x0, y1 - 1, z]], np.int64)
        cells = v.cells(coords, step)
        assert cells.shape == (3, d) and cells.dtype == np.complex64
        assert_close(cells[0], got[0, 0], 0)
        assert_close(cells[1], got[0, -1], 0)
        assert_close(cells[2], got[-1, 0], 0)
        # keyword forms
        assert_close(v.region(roi=roi, step=step, z=z), got, 0)


def test_vacuum_deterministic_and_distinct(ac):
    v = ac.HarmonicVacuum(2, seed=5)
    a = v.region((-8, -8, 8, 8), 3)
    assert np.array_equal(a, v.region((-8, -8, 8, 8), 3))
    assert np.array_equal(a, ac.HarmonicVacuum(2, seed=5).region((-8, -8, 8, 8), 3))
    assert not np.array_equal(a, ac.HarmonicVacuum(2, seed=6).region((-8, -8, 8, 8), 3))
    assert not np.array_equal(a, v.region((-8, -8, 8, 8), 4))
    assert not np.array_equal(a, v.region((-8, -8, 8, 8), 3, z=1))
    assert not np.array_equal(a[..., 0], a[..., 1])
    # sub-regions read the same values as the big one
    assert np.array_equal(v.region((-2, 0, 5, 3), 3), a[8:11, 6:13])
    # strength 0: exactly 1
    assert np.array_equal(ac.HarmonicVacuum(3, strength=0).region((0, 0, 4, 4)), np.ones((4, 4, 3), np.complex64))


def test_vacuum_thread_count_invariant(ac):
    v = ac.HarmonicVacuum(3, seed=11)
    n0 = ac.get_max_threads()
    try:
        ac.set_num_threads(1)
        a = v.region((-40, -30, 50, 40), 2)
        ac.set_num_threads(2)
        b = v.region((-40, -30, 50, 40), 2)
    finally:
        ac.set_num_threads(n0)
    assert np.array_equal(a, b)


def test_vacuum_statistics(ac):
    strength = 0.1
    r = ac.HarmonicVacuum(1, seed=3, strength=strength).region((0, 0, 200, 200))[..., 0]
    assert np.max(np.abs(np.abs(r) - 1)) < 1e-6
    g = np.arcsin(r.imag.astype(np.float64)) / strength
    assert abs(g.mean()) < 0.03 and abs(g.var() - 1) < 0.04


def test_vacuum_bad_input(ac):
    v = ac.HarmonicVacuum(2, seed=1)
    ref = v.region((0, 0, 3, 3))
    for roi in ((0, 0, 3), (0, 0, 3, 3, 3), (3, 0, 0, 3), (0, 3, 3, 0)):
        with pytest.raises(ValueError):
            v.region(roi)
    for roi in ((0.0, 0, 3, 3), "abcd", None, 5):
        with pytest.raises(TypeError):
            v.region(roi)
    with pytest.raises(ValueError):
        v.region((0, 0, 10 ** 6, 10 ** 6))  # absurd size: refused, not allocated
    with pytest.raises(OUT_OF_RANGE):
        v.region((-LIMIT, -LIMIT, LIMIT, LIMIT))
    with pytest.raises(OUT_OF_RANGE):
        v.region((0, 0, LIMIT + 2, 1))
    with pytest.raises(OUT_OF_RANGE):
        v.region((0, 0, 2, 2), z=LIMIT + 1)
    with pytest.raises(TypeError):
        v.region((0, 0, 2, 2), z=0.5)
    with pytest.raises(TypeError):
        v.region((0, 0, 2, 2), step="1")
    with pytest.raises(OUT_OF_RANGE):
        v.get_fluctuation((LIMIT + 1, 0, 0))
    for bad in ((1.0, 2, 3), "xyz", 3, None):
        with pytest.raises(TypeError):
            v.get_fluctuation(bad)
    with pytest.raises(ValueError):
        v.get_fluctuation((1, 2, 3, 4))
    with pytest.raises(TypeError):
        v.get_fluctuation((1, 2, 3), step=1.5)
    with pytest.raises(ValueError):
        v.cells(np.zeros((4, 5), np.int64))
    with pytest.raises(TypeError):
        v.cells(np.zeros((4, 3)))
    with pytest.raises(OUT_OF_RANGE):
        v.cells([[0, LIMIT + 1, 0]])
    # empty regions are fine
    assert v.region((5, 5, 5, 9)).shape == (4, 0, 2)
    assert v.cells(np.zeros((0, 3), np.int64)).shape == (0, 2)
    assert np.array_equal(v.region((0, 0, 3, 3)), ref)  # nothing changed

"""HarmonicVacuum: the procedural, deterministic vacuum of DESIGN §3.2, vectorised.

vacuum(seed, x, y, z, step, channel) is a pure function computed with uint64
wrapping arithmetic (splitmix64 finaliser), a float64 Box-Muller transform and
one rounding to complex64 at the end, so it matches the C backend to the last
float32 ulp.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._args import MAX_D_STATE, as_coord_int, MAX_REGION_CELLS, as_float, as_int, as_seed, coords_array, parse_coord, parse_roi

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 2.0 ** -53


def mix64_int(z: int) -> int:
    """splitmix64 finaliser on a Python int (uint64 wrapping)."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping); returns a new array."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> _S30)) * _MUL1
        z = (z ^ (z >> _S27)) * _MUL2
        return z ^ (z >> _S31)


def _as_u64(values: np.ndarray) -> np.ndarray:
    """int64 values reinterpreted as uint64 (two's complement)."""
    return np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)


def _to_field(h: np.ndarray, strength: float) -> np.ndarray:
    """Per-channel hashes (any shape, uint64) -> complex64 vacuum values of the same shape."""
    u1 = ((h >> _S11).astype(np.float64) + 1.0) * _TWO_M53
    u2 = (mix64(h) >> _S11).astype(np.float64) * _TWO_M53
    g = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    n = strength * g
    out = np.empty(h.shape, dtype=np.complex64)
    out.real = np.cos(n)
    out.imag = np.sin(n)
    return out


def vacuum_cells(seed: int, strength: float, d_state: int, coords: np.ndarray, step: int) -> np.ndarray:
    """Vacuum at ``coords`` ((N, 3) int64) and time ``step`` -> (N, d_state) complex64."""
    n = len(coords)
    if n == 0:
        return np.zeros((0, d_state), dtype=np.complex64)
    h0 = np.uint64(mix64_int(seed & _M64))
    step_u = np.uint64(step & _M64)
    h = mix64(h0 ^ _as_u64(coords[:, 0]))
    h = mix64(h ^ _as_u64(coords[:, 1]))
    h = mix64(h ^ _as_u64(coords[:, 2]))
    h = mix64(h ^ step_u)
    ch = np.arange(d_state, dtype=np.uint64)
    hc = mix64(h[:, None] ^ ch[None, :])
    return _to_field(hc, strength)


def vacuum_region(seed: int, strength: float, d_state: int, x0: int, y0: int, x1: int, y1: int,
                  z: int, step: int) -> np.ndarray:
    """Vacuum over [x0, x1) x [y0, y1) in plane z -> (y1-y0, x1-x0, d_state) complex64, [y, x]."""
    w, hgt = x1 - x0, y1 - y0
    if w <= 0 or hgt <= 0:
        return np.zeros((max(hgt, 0), max(w, 0), d_state), dtype=np.complex64)
    h0 = np.uint64(mix64_int(seed & _M64))
    xs = _as_u64(np.arange(x0, x1, dtype=np.int64))
    ys = _as_u64(np.arange(y0, y1, dtype=np.int64))
    hx = mix64(h0 ^ xs)                          # (w,)
    h = mix64(hx[None, :] ^ ys[:, None])         # (h, w)
    h = mix64(h ^ np.uint64(z & _M64))
    h = mix64(h ^ np.uint64(step & _M64))
    ch = np.arange(d_state, dtype=np.uint64)
    hc = mix64(h[:, :, None] ^ ch[None, None, :])
    return _to_field(hc, strength)


class HarmonicVacuum:
    """The deterministic vacuum: ``vacuum(coord, step)`` depends only on (seed, x, y, z, step, channel).

    d_state: channels per cell (1..4096); seed: 0 <= seed < 2**64; strength: finite, >= 0
    (phase noise amplitude, radians).
    """

    def __init__(self, d_state: int, seed: int = 0, strength: float = 0.1) -> None:
        self._d = as_int(d_state, "d_state", 1, MAX_D_STATE)
        self._seed = as_seed(seed, exc=OverflowError)
        self._strength = as_float(strength, "strength", lo=0.0)

    @property
    def d_state(self) -> int:
        return self._d

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def strength(self) -> float:
        return self._strength

    def __repr__(self) -> str:
        return f"HarmonicVacuum(d_state={self._d}, seed={self._seed}, strength={self._strength!r})"

    def get_fluctuation(self, coord: Any, step: int = 0) -> np.ndarray:
        """(d,) complex64 vacuum value of ``coord`` at time ``step``."""
        c = parse_coord(coord, "coord")
        s = as_int(step, "step")
        return vacuum_cells(self._seed, self._strength, self._d, np.array([c], dtype=np.int64), s)[0]

    def region(self, roi: Sequence[int], step: int = 0, z: int = 0) -> np.ndarray:
        """(y1-y0, x1-x0, d) complex64 over the half-open roi (x0, y0, x1, y1) in plane z."""
        x0, y0, x1, y1 = parse_roi(roi, MAX_REGION_CELLS // self._d)
        s = as_int(step, "step")
        zz = as_coord_int(z, "z")
        return vacuum_region(self._seed, self._strength, self._d, x0, y0, x1, y1, zz, s)

    def cells(self, coords: Any, step: int = 0) -> np.ndarray:
        """(N, d) complex64 for (N, 3) coords at time ``step``."""
        s = as_int(step, "step")
        c = coords_array(coords, "coords")
        if len(c) > MAX_REGION_CELLS // self._d:
            raise ValueError(f"coords: too many cells ({len(c)}) for d_state {self._d}")
        return vacuum_cells(self._seed, self._strength, self._d, c, s)

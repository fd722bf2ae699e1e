"""Lattice coordinates: the ``Coord3D`` value type and vectorised coordinate keys.

``KeyCodec`` turns (N, 3) int64 coordinates into 1-D sortable keys so that sets
of cells can be deduplicated (``np.unique``) and looked up (``np.searchsorted``)
without a Python loop.  Inside a bounding box whose volume fits in 62 bits a
key is the packed int64 ``((z - z0)·Sy + (y - y0))·Sx + (x - x0)``; otherwise
it falls back to a structured (z, y, x) record (slower, always correct).
"""
from __future__ import annotations

import operator
from typing import Any, Iterator, Sequence, Tuple

import numpy as np

_COORD_LIMIT = 1 << 60
_STRUCT = np.dtype([("z", "<i8"), ("y", "<i8"), ("x", "<i8")])


def _component(value: Any, name: str) -> int:
    if isinstance(value, (float, complex, str, bytes, np.floating)) or value is None:
        raise TypeError(f"Coord3D.{name}: expected an int, got {type(value).__name__}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"Coord3D.{name}: expected an int, got {type(value).__name__}") from None
    if v < -_COORD_LIMIT or v > _COORD_LIMIT:
        raise OverflowError(f"Coord3D.{name}: out of range (|{name}| <= 2**60), got {v}")
    return int(v)


class Coord3D:
    """An integer lattice coordinate (x, y, z), int64 components (read/write)."""

    __slots__ = ("_x", "_y", "_z")

    def __init__(self, x: int = 0, y: int = 0, z: int = 0) -> None:
        self._x = _component(x, "x")
        self._y = _component(y, "y")
        self._z = _component(z, "z")

    @property
    def x(self) -> int:
        return self._x

    @x.setter
    def x(self, value: int) -> None:
        self._x = _component(value, "x")

    @property
    def y(self) -> int:
        return self._y

    @y.setter
    def y(self, value: int) -> None:
        self._y = _component(value, "y")

    @property
    def z(self) -> int:
        return self._z

    @z.setter
    def z(self, value: int) -> None:
        self._z = _component(value, "z")

    def __repr__(self) -> str:
        return f"Coord3D(x={self._x}, y={self._y}, z={self._z})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Coord3D):
            return NotImplemented
        return self._x == other._x and self._y == other._y and self._z == other._z

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Coord3D):
            return NotImplemented
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self._x, self._y, self._z))

    def to_tuple(self) -> Tuple[int, int, int]:
        return (self._x, self._y, self._z)

    def __iter__(self) -> Iterator[int]:
        return iter((self._x, self._y, self._z))

    def __reduce__(self):
        return (Coord3D, (self._x, self._y, self._z))


class KeyCodec:
    """Encodes (N, 3) int64 coordinates inside a bounding box as 1-D sortable keys.

    All keys compared with each other must come from the same codec.
    """

    def __init__(self, lo: Sequence[int], hi: Sequence[int]) -> None:
        self.lo = [int(v) for v in lo]
        spans = [max(1, int(h) - int(l) + 1) for l, h in zip(lo, hi)]
        self.sx, self.sy = spans[0], spans[1]
        self.packed = spans[0] * spans[1] * spans[2] < (1 << 62)

    @classmethod
    def covering(cls, *arrays: np.ndarray, margin: int = 0) -> "KeyCodec":
        """A codec whose box holds every row of ``arrays`` widened by ``margin`` on every side."""
        nonempty = [a for a in arrays if len(a)]
        if not nonempty:
            return cls((0, 0, 0), (0, 0, 0))
        lo = [min(int(a[:, k].min()) for a in nonempty) - margin for k in range(3)]
        hi = [max(int(a[:, k].max()) for a in nonempty) + margin for k in range(3)]
        return cls(lo, hi)

    def encode(self, coords: np.ndarray) -> np.ndarray:
        """(N, 3) int64 inside the box -> (N,) keys (int64, or a structured record)."""
        if self.packed:
            x = coords[:, 0] - np.int64(self.lo[0])
            y = coords[:, 1] - np.int64(self.lo[1])
            z = coords[:, 2] - np.int64(self.lo[2])
            return (z * np.int64(self.sy) + y) * np.int64(self.sx) + x
        out = np.empty(len(coords), dtype=_STRUCT)
        out["x"] = coords[:, 0]
        out["y"] = coords[:, 1]
        out["z"] = coords[:, 2]
        return out


class KeyIndex:
    """Sorted index over a set of unique keys: ``find(q)`` -> row of each query or -1."""

    def __init__(self, keys: np.ndarray) -> None:
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def find(self, queries: np.ndarray) -> np.ndarray:
        n = len(self.sorted)
        if n == 0 or len(queries) == 0:
            return np.full(len(queries), -1, dtype=np.int64)
        pos = np.searchsorted(self.sorted, queries)
        np.minimum(pos, n - 1, out=pos)
        found = self.sorted[pos] == queries
        return np.where(found, self.order[pos], -1).astype(np.int64, copy=False)


def unique_rows(coords: np.ndarray, codec: KeyCodec) -> np.ndarray:
    """Unique rows of (N, 3) ``coords`` (first occurrence), sorted by key."""
    if len(coords) == 0:
        return coords.reshape(0, 3)
    _, first = np.unique(codec.encode(coords), return_index=True)
    return coords[first]


_U = np.uint64


def _spread3(v: np.ndarray) -> np.ndarray:
    """Spreads the low 21 bits of uint64 ``v`` so that bit i lands at bit 3i."""
    v = v & _U(0x1FFFFF)
    v = (v | (v << _U(32))) & _U(0x001F00000000FFFF)
    v = (v | (v << _U(16))) & _U(0x001F0000FF0000FF)
    v = (v | (v << _U(8))) & _U(0x100F00F00F00F00F)
    v = (v | (v << _U(4))) & _U(0x10C30C30C30C30C3)
    v = (v | (v << _U(2))) & _U(0x1249249249249249)
    return v


def morton_keys(coords: np.ndarray) -> np.ndarray:
    """Morton (Z-order) keys of (N, 3) int64 coords, as ``ath_coord_morton``: the low 21 bits of
    each component offset by 2**20, x in bit 3i, y in 3i+1, z in 3i+2."""
    with np.errstate(over="ignore"):
        comp = (coords.astype(np.int64).view(np.uint64) + _U(1 << 20)) & _U(0x1FFFFF)
    return _spread3(comp[:, 0]) | (_spread3(comp[:, 1]) << _U(1)) | (_spread3(comp[:, 2]) << _U(2))


def morton_order(coords: np.ndarray) -> np.ndarray:
    """Permutation sorting (N, 3) coords like ``ath_coord_sort_morton``: Morton key, then z, y, x."""
    if len(coords) < 2:
        return np.arange(len(coords))
    return np.lexsort((coords[:, 0], coords[:, 1], coords[:, 2], morton_keys(coords)))

"""SparseMap: the original module's scalar map (int -> float) and cell map (coord -> state).

Storage mirrors the C ``ath_cellmap`` / ``ath_scalarmap``: values live in dense
arrays in insertion order and ``remove`` moves the last entry into the hole,
so iteration order matches the C backend.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._args import (MAX_D_STATE, MAX_REGION_CELLS, as_float, as_int, coords_array, parse_coord, states_array,
                    to_complex64)
from .coord import Coord3D

#: "argument not given" (None is not a state either, but gives a clearer error there)
_MISSING: Any = object()

Key3 = Tuple[int, int, int]


class SparseMap:
    """Two maps in one object, as in the original module.

    Scalar API: int key -> float value.  Cell API: coord -> complex64 state of
    length ``d_state``; ``d_state`` is fixed by the constructor or by the first
    insert and enforced after.
    """

    def __init__(self, d_state: Optional[int] = None) -> None:
        self._d: Optional[int] = None if d_state is None else as_int(d_state, "d_state", 1, MAX_D_STATE)
        # scalar map
        self._sindex: Dict[int, int] = {}
        self._skeys: List[int] = []
        self._svals: List[float] = []
        # cell map
        self._cindex: Dict[Key3, int] = {}
        self._ccoords = np.zeros((0, 3), dtype=np.int64)
        self._cstates = np.zeros((0, self._d or 0), dtype=np.complex64)
        self._n = 0

    # ---------------------------------------------------------------- scalar API
    def insert(self, key: int, value: float) -> None:
        k = as_int(key, "key")
        v = as_float(value, "value", finite=False)
        i = self._sindex.get(k)
        if i is None:
            self._sindex[k] = len(self._skeys)
            self._skeys.append(k)
            self._svals.append(v)
        else:
            self._svals[i] = v

    def contains(self, key: int) -> bool:
        return as_int(key, "key") in self._sindex

    def get(self, key: int, default_value: float = 0.0) -> float:
        k = as_int(key, "key")
        d = as_float(default_value, "default_value", finite=False)
        i = self._sindex.get(k)
        return d if i is None else self._svals[i]

    def remove(self, key: int) -> bool:
        """True if the key was present."""
        k = as_int(key, "key")
        i = self._sindex.pop(k, None)
        if i is None:
            return False
        last = len(self._skeys) - 1
        if i != last:
            lk = self._skeys[last]
            self._skeys[i] = lk
            self._svals[i] = self._svals[last]
            self._sindex[lk] = i
        self._skeys.pop()
        self._svals.pop()
        return True

    def clear(self) -> None:
        """Clears both the scalar and the cell maps (d_state stays fixed)."""
        self._sindex.clear()
        self._skeys.clear()
        self._svals.clear()
        self._cindex.clear()
        self._n = 0

    def size(self) -> int:
        """Scalar entries + cells."""
        return len(self._skeys) + self._n

    def empty(self) -> bool:
        return self.size() == 0

    def keys(self) -> List[int]:
        """Scalar keys (storage order)."""
        return list(self._skeys)

    def values(self) -> List[float]:
        return list(self._svals)

    def __len__(self) -> int:
        return self.size()

    def __contains__(self, key: object) -> bool:
        """int -> scalar map; Coord3D / sequence -> cell map.  Unstorable keys are absent."""
        if isinstance(key, Coord3D) or (
                isinstance(key, (Sequence, np.ndarray)) and not isinstance(key, (str, bytes, bytearray))) \
                or (hasattr(key, "__len__") and hasattr(key, "__getitem__") and not isinstance(key, (str, bytes, bytearray, dict))):
            try:
                return self.contains_coord(key)
            except OverflowError:
                return False
        if isinstance(key, (float, np.floating)) or not hasattr(key, "__index__"):
            raise TypeError(f"SparseMap keys are ints or coordinates, got {type(key).__name__}")
        try:
            return self.contains(key)  # type: ignore[arg-type]
        except OverflowError:
            return False

    def __getitem__(self, key: int) -> float:
        k = as_int(key, "key")
        i = self._sindex.get(k)
        if i is None:
            raise KeyError(k)
        return self._svals[i]

    def __setitem__(self, key: int, value: float) -> None:
        self.insert(key, value)

    def __delitem__(self, key: int) -> None:
        if not self.remove(key):
            raise KeyError(as_int(key, "key"))

    def __repr__(self) -> str:
        return f"SparseMap(scalars={len(self._skeys)}, cells={self._n}, d_state={self._d})"

    # ------------------------------------------------------------------ cell API
    @property
    def d_state(self) -> Optional[int]:
        return self._d

    def _fix_d(self, d: int, name: str) -> None:
        if self._d is None:
            if d < 1 or d > MAX_D_STATE:
                raise ValueError(f"{name}: d_state must be in [1, {MAX_D_STATE}], got {d}")
            self._d = d
            self._cstates = np.zeros((0, d), dtype=np.complex64)

    def _reserve(self, n: int) -> None:
        cap = len(self._ccoords)
        if n <= cap:
            return
        new_cap = max(n, 2 * cap, 16)
        coords = np.zeros((new_cap, 3), dtype=np.int64)
        states = np.zeros((new_cap, self._d or 0), dtype=np.complex64)
        coords[: self._n] = self._ccoords[: self._n]
        states[: self._n] = self._cstates[: self._n]
        self._ccoords, self._cstates = coords, states

    def _set_rows(self, coords: np.ndarray, states: np.ndarray) -> None:
        self._reserve(self._n + len(coords))
        for c, s in zip(coords.tolist(), states):
            key = (c[0], c[1], c[2])
            i = self._cindex.get(key)
            if i is None:
                i = self._n
                self._cindex[key] = i
                self._ccoords[i] = c
                self._n += 1
            self._cstates[i] = s

    def insert_tensor(self, coord: Any, tensor: Any = _MISSING, *, state: Any = _MISSING) -> None:
        """Inserts or overwrites the (d,) state of ``coord`` (``tensor=`` as in the original
        module; ``state=`` is the older name)."""
        if (tensor is _MISSING) == (state is _MISSING):
            raise TypeError("insert_tensor: expected the state as tensor= (or state=), once")
        state = tensor if state is _MISSING else state
        c = parse_coord(coord, "coord")
        if self._d is None:
            arr = to_complex64(state, "state")
            if getattr(arr, "ndim", 0) != 1 or arr.shape[0] < 1:
                raise ValueError(f"state: expected a 1-D array of d_state values, got shape {np.shape(arr)}")
            d = int(arr.shape[0])
            s = states_array(state, "state", -1, d)
            self._fix_d(d, "state")
        else:
            s = states_array(state, "state", -1, self._d)
        self._set_rows(np.array([c], dtype=np.int64), s[None, :])

    def contains_coord(self, coord: Any) -> bool:
        return parse_coord(coord, "coord") in self._cindex

    def get_tensor(self, coord: Any) -> np.ndarray:
        """(d,) complex64 copy; KeyError if absent."""
        c = parse_coord(coord, "coord")
        i = self._cindex.get(c)
        if i is None:
            raise KeyError(Coord3D(*c))
        return self._cstates[i].copy()

    def remove_coord(self, coord: Any) -> bool:
        c = parse_coord(coord, "coord")
        i = self._cindex.pop(c, None)
        if i is None:
            return False
        last = self._n - 1
        if i != last:
            lc = self._ccoords[last].tolist()
            self._ccoords[i] = self._ccoords[last]
            self._cstates[i] = self._cstates[last]
            self._cindex[(lc[0], lc[1], lc[2])] = i
        self._n -= 1
        return True

    def coord_keys(self) -> List[Coord3D]:
        return [Coord3D(*c) for c in self._ccoords[: self._n].tolist()]

    def cell_count(self) -> int:
        return self._n

    # ---------------------------------------------------------------------- bulk
    def insert_many(self, coords: Any, states: Any) -> None:
        """(N, 3) coords, (N, d) states; all-or-nothing (validated before any insert)."""
        c = coords_array(coords, "coords")
        n = len(c)
        if self._d is None:
            arr = states if isinstance(states, np.ndarray) else np.asarray(states)
            if n == 0 and arr.size == 0:
                return
            if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
                raise ValueError(f"states: expected shape ({n}, d_state), got {arr.shape}")
            d = int(arr.shape[1])
            s = states_array(states, "states", n, d)
            self._fix_d(d, "states")
        else:
            s = states_array(states, "states", n, self._d)
        if n:
            self._set_rows(c, s)

    def get_many(self, coords: Any) -> Tuple[np.ndarray, np.ndarray]:
        """-> (states (N, d) complex64 with zeros where absent, found (N,) bool)."""
        c = coords_array(coords, "coords")
        d = self._d or 0
        if d and len(c) > MAX_REGION_CELLS // d:
            raise ValueError(f"coords: too many cells ({len(c)}) for d_state {d}")
        out = np.zeros((len(c), d), dtype=np.complex64)
        found = np.zeros(len(c), dtype=bool)
        for j, row in enumerate(c.tolist()):
            i = self._cindex.get((row[0], row[1], row[2]))
            if i is not None:
                out[j] = self._cstates[i]
                found[j] = True
        return out, found

    def cells(self) -> Tuple[np.ndarray, np.ndarray]:
        """-> (coords (N, 3) int64, states (N, d) complex64), storage order."""
        return self._ccoords[: self._n].copy(), self._cstates[: self._n].copy()

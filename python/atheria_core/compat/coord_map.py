"""``Coord3D`` and ``SparseMap`` of the original module.

``SparseMap`` keeps its scalar map (int -> float) in the native ``SparseMap``;
its cell map stores *any* torch tensor as given (dtype and shape kept), as the
original did, so it is a plain dict of tensors: the native cell map holds
only complex64 ``(d_state,)`` states.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ._convert import coord_tuple, torch


class Coord3D:
    """Integer lattice coordinate; ``repr`` is the original's ``Coord3D(1, 2, 3)``."""

    __slots__ = ("x", "y", "z")

    def __init__(self, x: int = 0, y: int = 0, z: int = 0) -> None:
        self.x, self.y, self.z = coord_tuple((x, y, z), "Coord3D")

    def __repr__(self) -> str:
        return f"Coord3D({self.x}, {self.y}, {self.z})"

    def __eq__(self, other: object) -> bool:
        if hasattr(other, "x") and hasattr(other, "y") and hasattr(other, "z"):
            return (self.x, self.y, self.z) == (other.x, other.y, other.z)  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.x, self.y, self.z))

    def __iter__(self):
        return iter((self.x, self.y, self.z))


def coords_to_list(arr: Any) -> List[Coord3D]:
    """(N, 3) int64 array -> list of Coord3D (components already ints: no per-item validation)."""
    new = Coord3D.__new__
    out = []
    for x, y, z in arr.tolist():
        c = new(Coord3D)
        c.x, c.y, c.z = x, y, z
        out.append(c)
    return out


class SparseMap:
    """Scalar map (native) plus a map of coordinates to torch tensors kept as inserted."""

    def __init__(self) -> None:
        from .. import _impl
        self._scalars = _impl.SparseMap()
        self._cells: Dict[Tuple[int, int, int], Any] = {}

    # scalar API (delegated)
    def insert(self, key: int, value: float) -> None:
        self._scalars.insert(key, value)

    def contains(self, key: int) -> bool:
        return self._scalars.contains(key)

    def get(self, key: int, default_value: float = 0.0) -> float:
        return self._scalars.get(key, default_value)

    def remove(self, key: int) -> None:
        """Removes ``key`` if present (the original returned None)."""
        self._scalars.remove(key)

    def clear(self) -> None:
        self._scalars.clear()
        self._cells.clear()

    def size(self) -> int:
        """Scalar entries + cells (as the original)."""
        return len(self._scalars.keys()) + len(self._cells)

    def empty(self) -> bool:
        return self.size() == 0

    def keys(self) -> List[int]:
        return self._scalars.keys()

    def values(self) -> List[float]:
        return self._scalars.values()

    def __len__(self) -> int:
        return self.size()

    def __contains__(self, key: int) -> bool:
        return self._scalars.contains(key)

    def __setitem__(self, key: int, value: float) -> None:
        self._scalars.insert(key, value)

    def __getitem__(self, key: int) -> float:
        if not self._scalars.contains(key):
            raise KeyError("Key not found")
        return self._scalars.get(key)

    def __delitem__(self, key: int) -> None:
        """Silent on a missing key, as the original."""
        self._scalars.remove(key)

    def __repr__(self) -> str:
        return f"<SparseMap with {self.size()} elements>"

    # cell API: any torch tensor, stored as is
    def insert_tensor(self, coord: Any, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
        self._cells[coord_tuple(coord)] = tensor

    def contains_coord(self, coord: Any) -> bool:
        return coord_tuple(coord) in self._cells

    def get_tensor(self, coord: Any) -> Optional[Any]:
        """The tensor inserted at ``coord`` (the same object), or None when absent (the original
        returned an undefined tensor, which reaches Python as None)."""
        return self._cells.get(coord_tuple(coord))

    def remove_coord(self, coord: Any) -> None:
        self._cells.pop(coord_tuple(coord), None)

    def coord_keys(self) -> List[Coord3D]:
        return [Coord3D(*k) for k in self._cells]

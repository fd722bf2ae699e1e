"""Torch <-> NumPy conversion for the compat layer (the original module took and gave torch tensors).

Only conversions live here; every computation is done by the native engines.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .._fallback._args import host_array

try:
    import torch
except ImportError as exc:  # pragma: no cover - the compat API is torch in, torch out
    raise ImportError("atheria_core.compat needs torch (the original module's API takes and returns "
                      f"torch tensors): {exc}") from exc


def to_numpy(obj: Any, name: str) -> np.ndarray:
    """A torch tensor (any device, requires_grad, non-contiguous, conjugate view) or an array-like
    -> a NumPy array (the tensor's host copy; no dtype change beyond the exact widenings of
    ``_fallback._args.host_array``, the conversion rule both backends use)."""
    if obj is None or isinstance(obj, (str, bytes)):
        raise TypeError(f"{name}: expected a torch tensor, got {type(obj).__name__}")
    try:
        return np.asarray(host_array(obj))
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def state_vector(obj: Any, d_state: int, name: str = "state") -> np.ndarray:
    """One cell state: any tensor with d_state values -> (d_state,) complex64 (the original
    copied the tensor into a complex64 (d_state,) slot when stepping)."""
    arr = to_numpy(obj, name)
    if arr.dtype.kind not in "iufcb":
        raise TypeError(f"{name}: expected a numeric tensor, got dtype {arr.dtype}")
    if arr.size != d_state:
        raise ValueError(f"{name}: expected {d_state} values (d_state), got shape {tuple(arr.shape)}")
    return np.ascontiguousarray(arr.reshape(d_state), dtype=np.complex64)


def to_torch(arr: np.ndarray) -> "torch.Tensor":
    """NumPy -> torch tensor sharing the (freshly returned, C-contiguous) array."""
    return torch.from_numpy(np.ascontiguousarray(arr))


def coord_tuple(coord: Any, name: str = "coord") -> Tuple[int, int, int]:
    """A Coord3D (ours or the compat one), or a sequence of 3 ints -> (x, y, z)."""
    if hasattr(coord, "x") and hasattr(coord, "y") and hasattr(coord, "z"):
        vals = (coord.x, coord.y, coord.z)
    else:
        try:
            vals = tuple(coord)
        except TypeError:
            raise TypeError(f"{name}: expected a Coord3D, got {type(coord).__name__}") from None
        if len(vals) != 3:
            raise ValueError(f"{name}: expected 3 components (x, y, z), got {len(vals)}")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: components must be ints, got {type(v).__name__}")
        out.append(int(v))
    return out[0], out[1], out[2]

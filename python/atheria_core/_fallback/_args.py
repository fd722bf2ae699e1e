"""Argument validation shared by the pure-Python backend.

Every helper raises ``TypeError`` / ``ValueError`` / ``OverflowError`` with a
message that names the argument, mirroring the C extension (``src/python/convert.c``).
"""
from __future__ import annotations

import math
import numbers
import operator
import re
from typing import Any, Optional, Sequence, Tuple

import numpy as np

#: |coordinate component| limit (ATH_COORD_LIMIT): c +- radius never overflows int64.
COORD_LIMIT: int = 1 << 60
#: Largest region / bulk size accepted in one call, in cells (ATHPY_MAX_REGION_CELLS).
MAX_REGION_CELLS: int = 1 << 28
#: Largest d_state (ATH_MAX_D_STATE).
MAX_D_STATE: int = 4096
#: Largest grid_size (ATH_MAX_GRID_SIZE).
MAX_GRID_SIZE: int = 1 << 20
#: Largest patch side accepted by the sparse Engine (ATH_ENGINE_MAX_PATCH).
MAX_PATCH: int = 63

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:[0-9]+)$")


def as_int(value: Any, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``value`` as a Python int (ints, NumPy/torch integer scalars; floats refused).

    Raises TypeError for non-integers, OverflowError outside int64, ValueError
    outside ``[lo, hi]``.
    """
    if isinstance(value, (float, complex, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}") from None
    if v < _INT64_MIN or v > _INT64_MAX:
        raise OverflowError(f"{name}: {v} does not fit in a 64-bit integer")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name}: must be in [{lo_s}, {hi_s}], got {v}")
    return int(v)


def as_coord_int(value: Any, name: str) -> int:
    """One coordinate component (e.g. ``z``): an int with |v| <= 2**60 (OverflowError otherwise)."""
    v = as_int(value, name)
    if v > COORD_LIMIT or v < -COORD_LIMIT:
        raise OverflowError(f"{name}: out of range (|{name}| <= 2**60), got {v}")
    return v


def as_seed(value: Any, name: str = "seed", exc: type = ValueError) -> int:
    """A uint64 seed: 0 <= seed < 2**64 (``exc`` otherwise: ValueError for the engines,
    OverflowError for HarmonicVacuum, as in the C extension)."""
    if isinstance(value, (float, complex, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}") from None
    if v < 0 or v >= (1 << 64):
        raise exc(f"{name}: must be in [0, 2**64), got {v}")
    return int(v)


def as_float(value: Any, name: str, *, finite: bool = True, lo: Optional[float] = None) -> float:
    """``value`` as a Python float; refuses non-numbers (TypeError), non-finite and < lo (ValueError)."""
    if isinstance(value, (str, bytes, complex)) or value is None:
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}") from None
    if finite and not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if lo is not None and v < lo:
        raise ValueError(f"{name}: must be >= {lo}, got {v}")
    return v


def as_bool(value: Any, name: str) -> bool:
    """Truthiness, like the C ``p`` format."""
    try:
        return bool(value)
    except Exception as exc:  # noqa: BLE001 - any failure is a type error here
        raise TypeError(f"{name}: expected a bool ({exc})") from None


def as_device(value: Any, name: str = "device") -> str:
    """'cpu', 'cuda' or 'cuda:N'."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str ('cpu', 'cuda' or 'cuda:N'), got {type(value).__name__}")
    if not _DEVICE_RE.match(value):
        raise ValueError(f"{name}: expected 'cpu', 'cuda' or 'cuda:N', got {value!r}")
    return value


def as_choice(value: Any, name: str, choices: Sequence[Optional[str]]) -> Optional[str]:
    """One of ``choices`` (None allowed only when listed)."""
    if value is None and None in choices:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {list(choices)!r}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)!r}, got {value!r}")
    return value


def _coord_component(item: Any, name: str) -> int:
    if isinstance(item, (float, bool, np.bool_, np.floating, np.complexfloating, complex, str, bytes)):
        raise TypeError(f"{name}: coordinates must be integers, got {type(item).__name__}")
    try:
        v = operator.index(item)
    except TypeError:
        raise TypeError(f"{name}: coordinates must be integers, got {type(item).__name__}") from None
    if v > COORD_LIMIT or v < -COORD_LIMIT:
        raise OverflowError(f"{name}: coordinate component out of range (|c| <= 2**60)")
    return int(v)


def parse_coord(obj: Any, name: str = "coord") -> Tuple[int, int, int]:
    """One coordinate: a Coord3D or a sequence of 2 (z = 0) or 3 ints -> (x, y, z)."""
    from .coord import Coord3D

    if isinstance(obj, Coord3D):
        vals = [obj.x, obj.y, obj.z]
        for v in vals:
            if v > COORD_LIMIT or v < -COORD_LIMIT:
                raise OverflowError(f"{name}: coordinate component out of range (|c| <= 2**60)")
        return vals[0], vals[1], vals[2]
    if isinstance(obj, (numbers.Number, str, bytes, np.generic)) or obj is None:
        raise TypeError(f"{name}: expected a Coord3D or a sequence of 2 or 3 ints, got {type(obj).__name__}")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "iu":
            raise TypeError(f"{name}: coordinates must be integers, got dtype {obj.dtype}")
        if obj.ndim != 1:
            raise ValueError(f"{name}: expected 2 or 3 coordinates, got shape {obj.shape}")
        items = obj.tolist()
    elif isinstance(obj, (set, frozenset, dict)) or not hasattr(obj, "__len__"):
        # unordered, or possibly endless (generators): refused, as in C
        raise TypeError(f"{name}: expected a Coord3D or a sequence of 2 or 3 ints, got {type(obj).__name__}")
    else:
        if len(obj) not in (2, 3):
            raise ValueError(f"{name}: expected 2 or 3 coordinates, got {len(obj)}")
        try:
            items = list(obj)
        except TypeError:
            raise TypeError(
                f"{name}: expected a Coord3D or a sequence of 2 or 3 ints, got {type(obj).__name__}") from None
    if len(items) not in (2, 3):
        raise ValueError(f"{name}: expected 2 or 3 coordinates, got {len(items)}")
    vals = [_coord_component(it, name) for it in items]
    if len(vals) == 2:
        vals.append(0)
    return vals[0], vals[1], vals[2]


def coords_array(obj: Any, name: str = "coords") -> np.ndarray:
    """An integer array-like of shape (N, 3) or (N, 2) (z = 0) -> new C-contiguous (N, 3) int64.

    Float/complex dtypes -> TypeError; wrong shape -> ValueError; |c| > 2**60 -> OverflowError;
    N > 2**28 -> ValueError.  An empty list is an empty batch.
    """
    try:
        arr = np.asarray(host_array(obj))
    except OverflowError:
        raise OverflowError(f"{name}: coordinate component out of range (|c| <= 2**60)") from None
    except Exception:  # noqa: BLE001 - ragged lists, tensors with grad, ...
        raise TypeError(f"{name}: expected an integer array-like of shape (N, 3) or (N, 2)") from None
    if arr.size == 0 and (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] in (2, 3))):
        return np.zeros((0, 3), dtype=np.int64)
    if arr.dtype == object:
        try:
            arr = np.asarray(obj, dtype=np.int64)
        except OverflowError:
            raise OverflowError(f"{name}: coordinate component out of range (|c| <= 2**60)") from None
        except Exception:  # noqa: BLE001
            raise TypeError(f"{name}: expected an integer array-like of shape (N, 3) or (N, 2)") from None
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name}: coordinates must be integers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"{name}: expected shape (N, 3) or (N, 2), got {arr.shape}")
    n = arr.shape[0]
    if n > MAX_REGION_CELLS:
        raise ValueError(f"{name}: too many coordinates ({n} > {MAX_REGION_CELLS})")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > COORD_LIMIT:
        raise OverflowError(f"{name}: coordinate component out of range (|c| <= 2**60)")
    out = np.zeros((n, 3), dtype=np.int64)
    out[:, : arr.shape[1]] = arr
    if out.size and (int(out.max()) > COORD_LIMIT or int(out.min()) < -COORD_LIMIT):
        bad = int(np.nonzero(np.any(np.abs(out) > COORD_LIMIT, axis=1))[0][0])
        raise OverflowError(f"{name}: coordinate component out of range at row {bad} (|c| <= 2**60)")
    return out


def host_array(obj: Any) -> Any:
    """A torch tensor as something NumPy converts exactly: detached, on the host, conj/neg
    bits resolved, bfloat16 / complex32 widened to float32 / complex64 (exact).  Anything
    else is returned as it is.  As ``athpy_host_array`` in src/python/convert.c."""
    if isinstance(obj, np.ndarray) or not (hasattr(obj, "detach") and hasattr(obj, "cpu")
                                           and hasattr(obj, "dtype")):
        return obj
    try:
        t = obj.detach().cpu()
        if hasattr(t, "resolve_conj"):
            t = t.resolve_conj()
        if hasattr(t, "resolve_neg"):
            t = t.resolve_neg()
        dt = str(t.dtype)
        if dt == "torch.bfloat16":
            t = t.float()
        elif dt in ("torch.complex32", "torch.chalf"):
            t = t.cfloat()
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:  # noqa: BLE001 - reported as the argument's type error by the caller
        raise TypeError(f"cannot copy the {type(obj).__name__} to the host") from None
    return t


def states_array(obj: Any, name: str, n: int, d: int) -> np.ndarray:
    """An array-like of complex values -> new C-contiguous complex64 array.

    Shape (d,) when ``n < 0``, else (n, d).  Real inputs are accepted.  Non-numeric
    dtypes -> TypeError, wrong shape -> ValueError, NaN/Inf -> ValueError.
    """
    arr = to_complex64(obj, name)
    if n < 0:
        if arr.ndim != 1 or arr.shape[0] != d:
            raise ValueError(f"{name}: expected shape ({d},) (d_state), got {arr.shape}")
    elif arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != d:
        if n == 0 and arr.size == 0:
            return np.zeros((0, d), dtype=np.complex64)
        raise ValueError(f"{name}: expected shape ({n}, {d}), got {arr.shape}")
    check_finite(arr, name)
    return arr


def to_complex64(obj: Any, name: str) -> np.ndarray:
    """Any numeric array-like (lists, NumPy, CPU torch tensors) -> new C-contiguous complex64 array.

    None, strings, bools arrays and object arrays -> TypeError (shape not checked).
    """
    if obj is None or isinstance(obj, (str, bytes)):
        raise TypeError(f"{name}: expected a numeric (complex) array-like, got {type(obj).__name__}")
    if isinstance(obj, np.ndarray) and (obj.dtype.kind not in "iufc"):
        raise TypeError(f"{name}: expected a numeric (complex) array, got dtype {obj.dtype}")
    try:
        raw = np.asarray(host_array(obj))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:  # noqa: BLE001 - ragged lists, objects NumPy cannot convert
        raise TypeError(f"{name}: expected a numeric (complex) array-like") from None
    if raw.dtype.kind not in "iufcb":
        raise TypeError(f"{name}: expected a numeric (complex) array-like, got dtype {raw.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(raw, dtype=np.complex64, copy=True, order="C")


def check_finite(arr: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` if ``arr`` holds NaN or Inf."""
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
        raise ValueError(f"{name}: non-finite value (NaN or Inf) at element {bad}")


def parse_roi(obj: Any, max_cells: int = MAX_REGION_CELLS) -> Tuple[int, int, int, int]:
    """A region (x0, y0, x1, y1), half-open, x0 <= x1, y0 <= y1, at most ``max_cells`` cells."""
    if obj is None or isinstance(obj, (numbers.Number, str, bytes)):
        raise TypeError("roi: expected a sequence (x0, y0, x1, y1)")
    try:
        items = list(obj.tolist() if isinstance(obj, np.ndarray) else obj)
    except TypeError:
        raise TypeError("roi: expected a sequence (x0, y0, x1, y1)") from None
    if len(items) != 4:
        raise ValueError("roi: expected 4 values (x0, y0, x1, y1)")
    vals = []
    for it in items:
        if isinstance(it, (float, np.floating, complex, str, bytes)):
            raise TypeError("roi: values must be integers")
        try:
            v = operator.index(it)
        except TypeError:
            raise TypeError("roi: values must be integers") from None
        # half-open: an end may be one past the last addressable cell (the range is closed)
        hi = COORD_LIMIT if len(vals) < 2 else COORD_LIMIT + 1
        if v > hi or v < -COORD_LIMIT:
            raise OverflowError("roi: coordinate component out of range (|c| <= 2**60)")
        vals.append(int(v))
    x0, y0, x1, y1 = vals
    if x1 < x0 or y1 < y0:
        raise ValueError(f"roi: need x0 <= x1 and y0 <= y1, got ({x0}, {y0}, {x1}, {y1})")
    if (x1 - x0) * (y1 - y0) > max_cells:
        raise ValueError(f"roi: region of {x1 - x0} x {y1 - y0} cells is too large (max {max_cells} cells)")
    return x0, y0, x1, y1

"""Pure-Python (NumPy) implementation of the atheria_core API.

Exposes exactly the names of ``_core.pyi`` so that ``atheria_core`` can use it
when the compiled extension is absent (or ``ATHERIA_FORCE_PYTHON=1``).  Numbers
agree with the C backend: the vacuum to the last float32 ulp, simulations to
float32 rounding.
"""
from __future__ import annotations

import logging
import operator
import os

from .._version import __version__
from ._args import as_int
from .coord import Coord3D
from .dense_engine import DenseEngine
from .engine import Engine
from .models import ConvModel, ZeroModel
from .sparse_map import SparseMap
from .vacuum import HarmonicVacuum

logger = logging.getLogger("atheria_core._fallback")

_num_threads: int = 1


def get_version() -> str:
    """The package version string."""
    return __version__


_MISSING = object()


def set_num_threads(num_threads: int = _MISSING, *, n: int = _MISSING) -> None:  # type: ignore[assignment]
    """Threads for the engine's parallel loops (stored only: the fallback is serial), in [1, 4096].
    ``num_threads=`` is the original module's keyword; ``n=`` the older one here."""
    global _num_threads
    if (num_threads is _MISSING) == (n is _MISSING):
        raise TypeError("set_num_threads: expected the thread count (num_threads=), once")
    _num_threads = as_int(num_threads if n is _MISSING else n, "num_threads", 1, 4096)


def get_max_threads() -> int:
    """The value last given to set_num_threads (1 by default)."""
    return _num_threads


def has_openmp() -> bool:
    """False: the Python fallback has no OpenMP."""
    return False


def add(i: int, j: int) -> int:
    """i + j (binding smoke test of the original module); 64-bit integer arguments."""
    a = as_int(i, "i")
    b = as_int(j, "j")
    r = a + b
    if not -(1 << 63) <= r < (1 << 63):   # as the C binding: never a wrapped or widened value
        raise OverflowError(f"add: {a} + {b} does not fit in a 64-bit integer")
    return r


__all__ = [
    "Coord3D", "SparseMap", "HarmonicVacuum", "ZeroModel", "ConvModel", "Engine", "DenseEngine",
    "get_version", "set_num_threads", "get_max_threads", "has_openmp", "add", "__version__",
]

"""The original ``atheria_core`` module's API (C++/pybind11, Atheria 5.0.0), over our engines.

Two ways in (docs/api.md, "Porting from the original module"):

* ``import atheria_core.compat as atheria_core`` in code that can be edited;
* ``ATHERIA_API=original`` in the environment: a plain ``import atheria_core``
  then gives these names (``atheria_core.BACKEND`` still says which engine runs).

Torch tensors in and out, lists of ``Coord3D``, ``[1, C, H, W]`` dense states
and the original's return values.  A thin layer: every step and every number
comes from the native engine of the selected backend (C, or the pure-Python
fallback with ``ATHERIA_FORCE_PYTHON=1``).  The original's vacuum (``std::hash``
seeded ``torch.randn``) is not reproduced: absent cells read our vacuum.
"""
from __future__ import annotations

from .. import _impl
from .. import (BACKEND, BACKEND_REASON, VERSION_MAJOR, VERSION_MINOR, VERSION_PATCH, __version__,
                has_torch_shim, has_torch_support)
from .. import set_num_threads as _set_num_threads
from .coord_map import Coord3D, SparseMap
from .engines import DenseEngine, Engine


def get_version() -> str:
    return __version__


def add(i: int, j: int) -> int:
    return _impl.add(i, j)


def set_num_threads(num_threads: int) -> None:
    """Engine (OpenMP) and torch intra-op threads."""
    _set_num_threads(num_threads)


def get_max_threads() -> int:
    return _impl.get_max_threads()


__all__ = [
    "Coord3D", "SparseMap", "Engine", "DenseEngine", "get_version", "add", "has_torch_support",
    "set_num_threads", "get_max_threads", "__version__", "VERSION_MAJOR", "VERSION_MINOR", "VERSION_PATCH",
    "BACKEND", "BACKEND_REASON", "has_torch_shim",
]

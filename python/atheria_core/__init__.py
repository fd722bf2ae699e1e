"""atheria_core — the native engine of the Atheria simulator.

The compiled C extension (``atheria_core._core``) is used when it imports;
otherwise, or when ``ATHERIA_FORCE_PYTHON=1`` is set, the pure-Python
implementation of the same API (``atheria_core._fallback``) takes over.
``BACKEND`` says which one is in use (``"c"`` or ``"python"``) and
``BACKEND_REASON`` why.
"""
from __future__ import annotations

import logging
import os

from ._version import __version__

logger = logging.getLogger("atheria_core")

_PUBLIC = (
    "Coord3D", "SparseMap", "HarmonicVacuum", "ZeroModel", "ConvModel", "Engine", "DenseEngine",
    "get_version", "set_num_threads", "get_max_threads", "has_openmp", "add",
)


def _configure_openmp():
    """OpenMP wait policy, set before the OpenMP runtime initialises.

    libgomp reads ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` once, when it is
    loaded (by our extension or by torch: both use the one ``libgomp.so.1``
    of the process, whichever loads first).  Its default makes idle worker
    threads spin; on a small or loaded machine (2 cores, torch's intra-op
    threads, other processes) a spinning worker is descheduled and every
    short parallel region then waits scheduler ticks (~8 ms measured per
    region instead of ~0.1 ms).  Unless the user chose a policy
    (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set), we select ``PASSIVE``
    (workers sleep at once; a region start costs a futex wake-up).
    ``ATHERIA_OMP_WAIT_POLICY=inherit`` keeps libgomp's default.

    If torch was imported first, the runtime is already initialised and the
    setting cannot take effect: import ``atheria_core`` first, or export
    ``OMP_WAIT_POLICY=passive`` before starting Python.
    """
    import sys
    if os.environ.get("ATHERIA_OMP_WAIT_POLICY", "").lower() == "inherit":
        return
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if "torch" in sys.modules:
        logger.info("atheria_core: torch was imported before atheria_core, so OMP_WAIT_POLICY=PASSIVE "
                    "set now does not reach the already initialised OpenMP runtime; import atheria_core "
                    "first or export OMP_WAIT_POLICY=passive (short parallel regions may be slow on a "
                    "loaded machine otherwise)")


_configure_openmp()


def _select_backend():
    if os.environ.get("ATHERIA_FORCE_PYTHON", "") == "1":
        from . import _fallback
        return _fallback, "python", "ATHERIA_FORCE_PYTHON=1"
    try:
        from . import _core
    except ImportError as exc:
        from . import _fallback
        logger.warning("atheria_core: compiled extension not available (%s); using the Python fallback", exc)
        return _fallback, "python", f"compiled extension not importable: {exc}"
    return _core, "c", "compiled extension"


_impl, BACKEND, BACKEND_REASON = _select_backend()
if BACKEND == "c":
    # registers the model loader that Engine.load_model / DenseEngine.load_model call
    from . import _model_loader as _model_loader  # noqa: F401,E402

Coord3D = _impl.Coord3D
SparseMap = _impl.SparseMap
HarmonicVacuum = _impl.HarmonicVacuum
ZeroModel = _impl.ZeroModel
ConvModel = _impl.ConvModel
Engine = _impl.Engine
DenseEngine = _impl.DenseEngine
get_version = _impl.get_version
get_max_threads = _impl.get_max_threads
has_openmp = _impl.has_openmp
add = _impl.add


def set_num_threads(n: int) -> None:
    """Sets the engine's thread count (OpenMP) and torch's intra-op threads, if torch is loaded.

    One knob for both, so that the engine's loops and the model's forward do
    not oversubscribe the cores.
    """
    _impl.set_num_threads(n)
    import sys
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(n))


def has_torch_support() -> bool:
    """True if the LibTorch shim (TorchScript forward in C++, without the GIL) is built and loads."""
    from . import _torch_support
    return _torch_support.shim_available()


__all__ = list(_PUBLIC) + ["BACKEND", "BACKEND_REASON", "has_torch_support", "__version__"]

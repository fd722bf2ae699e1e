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

from ._version import VERSION_MAJOR, VERSION_MINOR, VERSION_PATCH, __version__

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


_NOT_GIVEN = object()


def set_num_threads(num_threads: int = _NOT_GIVEN, *, n: int = _NOT_GIVEN) -> None:  # type: ignore[assignment]
    """Sets the engine's thread count (OpenMP) and torch's intra-op threads, if torch is loaded.

    One knob for both, so that the engine's loops and the model's forward do
    not oversubscribe the cores.  ``num_threads=`` is the original module's
    keyword; ``n=`` the older one here.
    """
    if (num_threads is _NOT_GIVEN) == (n is _NOT_GIVEN):
        raise TypeError("set_num_threads: expected the thread count (num_threads=), once")
    n = num_threads if n is _NOT_GIVEN else n
    _impl.set_num_threads(num_threads=n)
    import sys
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(n))


def has_torch_support() -> bool:
    """True if torch tensors are accepted (torch is importable), as in the original module.

    The original meant "compiled with LibTorch", i.e. torch tensors in and
    out; here every state argument accepts a torch tensor whenever torch can
    be imported.  Whether the LibTorch shim (TorchScript forward in C++,
    without the GIL) is built and loads is :func:`has_torch_shim`.
    """
    import importlib.util
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def has_torch_shim() -> bool:
    """True if the LibTorch shim (TorchScript forward in C++, without the GIL) is built and loads."""
    from . import _torch_support
    return _torch_support.shim_available()


# Snapshots, ROI views and analysis on both engine types (python/atheria_core/_engines.py).
from ._engines import engine_types as _engine_types  # noqa: E402
from .snapshot import History, Snapshot, SnapshotError, load_snapshot  # noqa: E402
from .roi import ROIManager  # noqa: E402

Engine, DenseEngine = _engine_types(_impl)

__all__ = list(_PUBLIC) + ["BACKEND", "BACKEND_REASON", "has_torch_support", "has_torch_shim", "__version__",
                           "VERSION_MAJOR", "VERSION_MINOR", "VERSION_PATCH", "API",
                           "Snapshot", "SnapshotError", "History", "load_snapshot", "ROIManager"]


#: Our API's objects that ATHERIA_API=original replaced at the top level (see _native).
_NATIVE_API: dict = {}


def _native(name: str):
    """Our API's top-level object ``name`` (e.g. ``"Engine"``), also when ATHERIA_API=original
    replaced it with the original module's; for the package's own modules (the wrapper)."""
    return _NATIVE_API.get(name) or globals()[name]


def _select_api() -> str:
    """``ATHERIA_API=original``: the top level becomes the original module's API
    (``atheria_core.compat``) for backends that cannot be edited; ``BACKEND`` still
    says which engine runs.  Unset or ``native``: our API."""
    choice = os.environ.get("ATHERIA_API", "").strip().lower()
    if choice in ("", "native"):
        return "native"
    if choice != "original":
        logger.warning("atheria_core: ignoring ATHERIA_API=%r (expected 'original' or 'native')", choice)
        return "native"
    from . import compat as _compat
    g = globals()
    for name in _compat.__all__:
        if name in g:
            _NATIVE_API[name] = g[name]
        g[name] = getattr(_compat, name)
    logger.info("atheria_core: ATHERIA_API=original: the original module's API over the %s backend", BACKEND)
    return "original"


#: Which API the top level gives: "native" (ours) or "original" (ATHERIA_API=original).
API = _select_api()

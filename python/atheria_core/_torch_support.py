"""Discovery and use of the optional LibTorch shim (``atheria_core._torch_shim``).

The shim is a plain shared object (C++ over LibTorch, no ``PyInit``) built by
``setup.py`` only when torch is importable at build time.  It is never
imported: :func:`shim_path` finds the file and the compiled extension
(``atheria_core._core``) ``dlopen()``\\ s it and calls its ``extern "C"``
functions (``include/atheria/torch_shim.h``).  A model loaded through it is a
``PyCapsule`` named ``"atheria_core.model"`` that the engines' ``set_model``
accept; its forward runs in C++ without the GIL.

Why torch is imported before the shim is opened: the shim links against
``libtorch_cpu.so``/``libc10.so`` by soname (rpath = the torch it was built
with).  Importing torch first puts the Python package's copies of those
libraries into the process, so the dynamic loader reuses them for the shim:
one LibTorch per process, sharing its operator registry, thread pools and
allocator with Python torch (``torch.set_num_threads`` applies to both).
Opening the shim first could pull in a different LibTorch found on the search
path (``LD_LIBRARY_PATH``) and a later ``import torch`` would then load a
second copy, which fails with duplicate operator registrations or worse.  For
the same reason the shim is refused when it was built against another torch
version than the one importable now (the C++ ABI is not stable across
versions).

Environment: ``ATHERIA_NO_SHIM=1`` (or ``ATHERIA_FORCE_PYTHON=1``) disables the
shim (the engines then use the Python route, ``torch.jit.load`` + the callable
adapter).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
from typing import Any, Optional, Union

logger = logging.getLogger("atheria_core.torch")

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the capsule that holds an ``ath_model *`` (accepted by ``set_model``).
MODEL_CAPSULE_NAME = "atheria_core.model"

_unavailable_reason: Optional[str] = None
#: the shim built on first use by build_shim() (None: the installed one, or none)
_built_shim: Optional[str] = None


def shim_path() -> Optional[str]:
    """Path of the built ``atheria_core._torch_shim`` shared object, or None if absent.

    Found with :func:`importlib.util.find_spec` (the file has no ``PyInit``, so
    it must not be imported).
    """
    try:
        spec = importlib.util.find_spec("atheria_core._torch_shim")
    except (ImportError, ValueError) as exc:
        logger.debug("atheria_core: looking for the LibTorch shim failed: %s", exc)
        return None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return _built_shim
    return spec.origin


def _torch_base_version(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0'."""
    return version.split("+", 1)[0].strip()


_SHIM_SOURCES = ("src/torch/torch_shim.cpp", "src/torch/aoti_model.cpp")


def _source_root() -> Optional[str]:
    """The source checkout this package runs from (an editable install), or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if all(os.path.isfile(os.path.join(root, f)) for f in _SHIM_SOURCES) and \
            os.path.isfile(os.path.join(root, "include", "atheria", "torch_shim.h")):
        return root
    return None


def _shim_cache_dir(torch: Any) -> str:
    base = os.environ.get("ATHERIA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "atheria_core")
    tag = f"torch-{_torch_base_version(torch.__version__)}-abi{int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    return os.path.join(base, "torch_shim", tag)


def build_shim() -> tuple[Optional[str], Optional[str]]:
    """Builds the LibTorch shim against the installed torch with ``torch.utils.cpp_extension``.

    Used on the first model load when the install built no shim (``pip install -e .`` with build
    isolation has no torch at build time).  The library is cached under
    ``~/.cache/atheria_core/torch_shim/torch-<version>-abi<N>/`` (``ATHERIA_CACHE_DIR``), rebuilt by
    ninja only when a source changed.  Returns (path, None), or (None, reason) when it cannot be
    built (no sources, no compiler / ninja, compile error); ``ATHERIA_BUILD_SHIM=0`` disables it.
    """
    if os.environ.get("ATHERIA_BUILD_SHIM", "1") == "0":
        return None, "the LibTorch shim was not built and ATHERIA_BUILD_SHIM=0"
    root = _source_root()
    if root is None:
        return None, "the LibTorch shim was not built and its sources are not next to this package"
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # noqa: BLE001
        return None, f"torch is not importable ({exc})"
    if not cpp_extension.is_ninja_available():
        return None, "the LibTorch shim was not built and ninja (needed to build it now) is not installed"
    import shutil
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        return None, "the LibTorch shim was not built and there is no C++ compiler to build it now"
    build_dir = _shim_cache_dir(torch)
    os.makedirs(build_dir, exist_ok=True)
    cached = os.path.isfile(os.path.join(build_dir, "atheria_torch_shim.so"))
    if cached:
        logger.info("atheria_core: using the LibTorch shim cached in %s (rebuilt if a source changed)", build_dir)
    else:
        logger.warning("atheria_core: building the LibTorch shim against torch %s in %s (once; about a minute)",
                       torch.__version__, build_dir)
    try:
        path = cpp_extension.load(
            name="atheria_torch_shim", sources=[os.path.join(root, f) for f in _SHIM_SOURCES],
            extra_include_paths=[os.path.join(root, "include")],
            extra_cflags=["-O2", "-fvisibility=hidden"], build_directory=build_dir,
            is_python_module=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - compiler errors, missing headers...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return None, f"building the LibTorch shim failed ({first})"
    if not isinstance(path, str):
        path = os.path.join(build_dir, "atheria_torch_shim.so")
    if not cached:
        logger.warning("atheria_core: built the LibTorch shim: %s", path)
    return path, None


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[Optional[str], Optional[str]]:
    """(shim path, None) when the shim can be used, else (None, reason). Cached."""
    global _built_shim
    path = shim_path()
    if path is None:
        path, why = build_shim()
        if path is None:
            return None, why
        _built_shim = path
    try:
        from . import _core
    except ImportError as exc:
        return None, f"the compiled extension is not importable ({exc})"
    if not hasattr(_core, "_torch_shim_info"):
        return None, "the compiled extension has no shim loader"
    try:
        import torch  # noqa: F401 - must come before dlopen (module docstring)
    except Exception as exc:  # noqa: BLE001 - any failure means no torch
        return None, f"torch is not importable ({exc})"
    try:
        info = _core._torch_shim_info(path)
    except OSError as exc:
        return None, str(exc)
    built = _torch_base_version(str(info.get("torch_version", "")))
    running = _torch_base_version(torch.__version__)
    if built != running:
        return None, (f"the LibTorch shim was built against torch {built} but torch {running} is "
                      "installed: rebuild atheria_core")
    return path, None


def shim_available() -> bool:
    """True if the LibTorch shim is built, opens (dlopen + dlsym), and matches the installed torch.

    The result is cached (``ATHERIA_NO_SHIM=1`` and ``ATHERIA_FORCE_PYTHON=1``
    are checked on every call and disable the shim).  :func:`unavailable_reason` says why it is False.
    """
    global _unavailable_reason
    if os.environ.get("ATHERIA_NO_SHIM", "") == "1":
        _unavailable_reason = "ATHERIA_NO_SHIM=1"
        return False
    if os.environ.get("ATHERIA_FORCE_PYTHON", "") == "1":
        _unavailable_reason = "ATHERIA_FORCE_PYTHON=1 (the Python backend cannot run shim models)"
        return False
    path, reason = _probe()
    if path is None:
        if reason != _unavailable_reason:
            logger.info("atheria_core: LibTorch shim unavailable: %s", reason)
        _unavailable_reason = reason
        return False
    _unavailable_reason = None
    return True


def unavailable_reason() -> Optional[str]:
    """Why :func:`shim_available` is False (None when it is True)."""
    return None if shim_available() else _unavailable_reason


def _as_model_load_error(exc: BaseException, kind: str, path: str) -> BaseException:
    """The extension's exception (with ``.kind`` from include/atheria/load_error.h) as a ModelLoadError."""
    from ._metadata import ModelLoadError, ModelNotFoundError
    if kind == "not_found":
        return ModelNotFoundError(path)
    return ModelLoadError(str(exc), kind=kind, path=path)


def _call_primitive(fn: Any, path_str: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(shim_path(), path_str, *args, **kwargs)
    except (OSError, RuntimeError, ValueError, MemoryError) as exc:
        kind = getattr(exc, "kind", None)
        if not isinstance(kind, str):
            raise
        raise _as_model_load_error(exc, kind, path_str) from exc


def load_via_shim(path: PathLike, device: Any = "cpu", metadata: Any = None, *, optimize: bool = True,
                  probe_shape: Optional[tuple] = None, with_info: bool = False) -> Any:
    """Loads a TorchScript file with LibTorch; returns an ``"atheria_core.model"`` capsule.

    Args:
        path: the TorchScript file (``torch.jit.save`` / ``export_model``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` works too).
        metadata: the file's :class:`~atheria_core._metadata.ModelMetadata`; read when None.
            Without metadata the file is a stateless ``forward(x)`` model of unknown radius
            (unless it evidently is a memory model).
        optimize: freeze + ``optimize_for_inference`` in C++, kept only when it matches the
            plain forward within 1e-5 on a probe of ``probe_shape`` (B, C, H, W).
        with_info: return ``(capsule, optimized, note)`` instead of the capsule.

    Raises:
        RuntimeError: the shim is unavailable (see :func:`unavailable_reason`).
        atheria_core._metadata.ModelLoadError: the file cannot be used ("cannot load ... <file>:
            <cause>", ``kind`` from include/atheria/load_error.h).
    """
    from ._metadata import read_metadata
    if not shim_available():
        raise RuntimeError(f"the LibTorch shim is unavailable: {_unavailable_reason}")
    path_str = os.fspath(path)
    if metadata is None:
        metadata = read_metadata(path_str)
    args = metadata.load_args() if metadata is not None else \
        {"has_memory": -1, "receptive_radius": -1, "zero_preserving": -1, "channels": -1}
    if os.environ.get("ATHERIA_NO_OPTIMIZE", "") == "1":
        optimize = False
    from . import _core
    capsule, optimized, note = _call_primitive(_core._torch_load2, path_str, str(device), optimize=bool(optimize),
                                               probe_shape=probe_shape, **args)
    logger.info("atheria_core: loaded %s on %s through the LibTorch shim (%s; %s)", path_str, device,
                _core._model_info(capsule), note or "not optimised")
    return (capsule, bool(optimized), note) if with_info else capsule


def load_aoti_via_shim(path: PathLike, device: Any, metadata: Any) -> Any:
    """Loads a .pt2 package (AOTIModelPackageLoader in C++); returns a model capsule.

    ``metadata`` is the package's ModelMetadata (its ``input_shape`` / ``memory_shape``)."""
    if not shim_available():
        raise RuntimeError(f"the LibTorch shim is unavailable: {_unavailable_reason}")
    from . import _core
    path_str = os.fspath(path)
    rr = -1 if metadata.receptive_radius is None else metadata.receptive_radius
    zp = -1 if metadata.zero_preserving is None else int(metadata.zero_preserving)
    capsule = _call_primitive(_core._aoti_load, path_str, str(device), list(metadata.input_shape),
                              list(metadata.memory_shape) if metadata.memory_shape else None, rr, zp)
    logger.info("atheria_core: loaded %s on %s through the LibTorch shim (AOTInductor, %s)", path_str, device,
                _core._model_info(capsule))
    return capsule


def cuda_available() -> bool:
    """True if CUDA can be used: asked of the shim when available, else of Python torch."""
    if shim_available():
        from . import _core
        try:
            return bool(_core._torch_cuda_available(shim_path()))
        except OSError as exc:  # pragma: no cover - shim_available() opened it already
            logger.debug("atheria_core: shim CUDA query failed: %s", exc)
    try:
        import torch
    except Exception:  # noqa: BLE001 - no torch, no CUDA
        return False
    return bool(torch.cuda.is_available())


__all__ = [
    "MODEL_CAPSULE_NAME", "shim_path", "shim_available", "unavailable_reason", "load_via_shim",
    "load_aoti_via_shim", "cuda_available",
]

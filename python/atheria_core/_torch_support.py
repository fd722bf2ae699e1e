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
import json
import logging
import os
import zipfile
from typing import Any, Optional, Union

logger = logging.getLogger("atheria_core.torch")

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the capsule that holds an ``ath_model *`` (accepted by ``set_model``).
MODEL_CAPSULE_NAME = "atheria_core.model"

_META_SUFFIX = "/extra/atheria_meta.json"
_unavailable_reason: Optional[str] = None


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
        return None
    return spec.origin


def _torch_base_version(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0'."""
    return version.split("+", 1)[0].strip()


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[Optional[str], Optional[str]]:
    """(shim path, None) when the shim can be used, else (None, reason). Cached."""
    path = shim_path()
    if path is None:
        return None, "the LibTorch shim was not built (torch was not importable at build time)"
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


def read_metadata(path: PathLike) -> Optional[dict[str, Any]]:
    """The ``atheria_meta.json`` of a TorchScript file, or None if it has none.

    A TorchScript file is a zip archive; the metadata is the member ending in
    ``/extra/atheria_meta.json`` (docs/torchscript.md).  Needs no torch.  A file
    that is missing or not a zip gives None (the loader then reports the real
    problem); unparsable metadata is logged and ignored.
    """
    try:
        with zipfile.ZipFile(os.fspath(path)) as zf:
            names = [n for n in zf.namelist()
                     if n.endswith(_META_SUFFIX) or n == _META_SUFFIX.lstrip("/")]
            if not names:
                return None
            raw = zf.read(names[0])
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError, ValueError) as exc:
        logger.debug("atheria_core: no metadata read from %s: %s", path, exc)
        return None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        logger.warning("atheria_core: ignoring unparsable atheria_meta.json in %s: %s", path, exc)
        return None
    if not isinstance(meta, dict):
        logger.warning("atheria_core: ignoring atheria_meta.json in %s: not a JSON object", path)
        return None
    return meta


def _tristate(value: Any) -> int:
    """True -> 1, False -> 0, None/absent -> -1."""
    if value is None:
        return -1
    return 1 if bool(value) else 0


def load_args_from_metadata(metadata: Optional[dict[str, Any]]) -> dict[str, int]:
    """The shim's load arguments (has_memory, receptive_radius, zero_preserving, channels).

    Without metadata everything is unknown (-1): the shim then treats the file
    as a stateless ``forward(x)`` model, unless it evidently is a memory model
    (``forward(x, h, c)`` plus ``init_memory``).
    """
    if metadata is None:
        return {"has_memory": -1, "receptive_radius": -1, "zero_preserving": -1, "channels": -1}
    rr = metadata.get("receptive_radius")
    d_state = metadata.get("d_state")
    return {
        "has_memory": 1 if metadata.get("has_memory") else 0,
        "receptive_radius": int(rr) if isinstance(rr, int) and not isinstance(rr, bool) and rr >= 0 else -1,
        "zero_preserving": _tristate(metadata.get("zero_preserving")),
        "channels": (2 * d_state if isinstance(d_state, int) and not isinstance(d_state, bool)
                     and d_state > 0 else -1),
    }


def _read_metadata_checked(path: str) -> Optional[dict[str, Any]]:
    """Metadata read and validated the same way as the Python route.

    Uses ``_model_loader.read_metadata`` (which also checks the archive and
    raises ModelLoadError for a missing / non-zip / corrupt file or bad
    metadata), so both routes report a bad file alike; falls back to the
    tolerant :func:`read_metadata` when that module cannot be imported.
    """
    try:
        from ._model_loader import read_metadata as checked_read_metadata
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        logger.debug("atheria_core: _model_loader unavailable (%s); reading metadata leniently", exc)
        return read_metadata(path)
    return checked_read_metadata(path)


def _as_model_load_error(exc: BaseException, kind: str, path: str) -> BaseException:
    """The shim's exception as the Python route's ModelLoadError (same ``kind``)."""
    try:
        from ._model_loader import ModelLoadError, ModelNotFoundError
    except ImportError:  # pragma: no cover
        return exc
    if kind == "not_found":
        return ModelNotFoundError(path)
    return ModelLoadError(str(exc), kind=kind, path=path)


def load_via_shim(path: PathLike, device: Any = "cpu",
                  metadata: Optional[dict[str, Any]] = None) -> Any:
    """Loads a TorchScript file with LibTorch; returns an ``"atheria_core.model"`` capsule.

    Args:
        path: the TorchScript file (``torch.jit.save`` / ``export_model_to_jit``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` works too).
        metadata: the file's ``atheria_meta.json`` as a dict; read from the file
            when None.  A file without metadata is a stateless ``forward(x)``
            model of unknown radius (unless it evidently is a memory model).

    Returns:
        A capsule owning the ``ath_model *``; pass it to ``Engine.set_model`` /
        ``DenseEngine.set_model``.

    Raises:
        RuntimeError: the shim is unavailable (see :func:`unavailable_reason`).
        atheria_core._model_loader.ModelLoadError: the file cannot be used, with
            the same ``kind``s as the Python route (``not_found`` — also a
            FileNotFoundError —, ``not_a_file``, ``not_zip``, ``not_torchscript``,
            ``corrupt``, ``bad_metadata``, ``incompatible``, ``cuda_unavailable``,
            ``bad_device``, ``bad_model``) and a message naming the file and the cause.
    """
    if not shim_available():
        raise RuntimeError(f"the LibTorch shim is unavailable: {_unavailable_reason}")
    path_str = os.fspath(path)
    if metadata is None:
        metadata = _read_metadata_checked(path_str)
    args = load_args_from_metadata(metadata)
    from . import _core
    logger.debug("atheria_core: loading %s on %s through the LibTorch shim (%s)", path_str, device, args)
    try:
        capsule = _core._torch_load(shim_path(), path_str, str(device), **args)
    except (OSError, RuntimeError, ValueError) as exc:
        kind = getattr(exc, "kind", None)
        if not isinstance(kind, str):
            raise
        raise _as_model_load_error(exc, kind, path_str) from exc
    logger.info("atheria_core: loaded %s on %s through the LibTorch shim (%s)", path_str, device,
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
    "MODEL_CAPSULE_NAME", "shim_path", "shim_available", "unavailable_reason", "read_metadata",
    "load_args_from_metadata", "load_via_shim", "cuda_available",
]

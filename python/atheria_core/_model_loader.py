"""Python route for loading TorchScript rules into the native engines.

Used by ``Engine.load_model`` / ``DenseEngine.load_model`` when the LibTorch
shim is not built (docs/torchscript.md): :func:`load_model_for_engine` returns
a callable taking a float32 NumPy batch ``(B, 2·d, H, W)`` and returning the
update δ as float32 ``(B, 2·d, H, W)``.

This module imports without torch; torch is imported when a model is loaded.
:func:`read_metadata` reads ``atheria_meta.json`` from the archive with
``zipfile`` only, so the shim route reuses it.

Every failure raises :class:`ModelLoadError` (a RuntimeError) whose message
names the file and the cause, with ``kind`` one of :data:`ERROR_KINDS`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "ModelNotFoundError", "TorchScriptModel", "load_model_for_engine",
           "read_metadata", "check_archive", "quiet_jit_deprecation",
           "META_NAME", "META_FORMAT", "META_VERSION", "ERROR_KINDS"]

META_NAME = "atheria_meta.json"
META_FORMAT = "atheria-torchscript"
#: highest metadata version this loader understands
META_VERSION = 1
ERROR_KINDS = ("not_found", "not_a_file", "not_zip", "corrupt", "not_torchscript", "bad_metadata",
               "incompatible", "no_torch", "cuda_unavailable", "bad_device", "bad_model")


class ModelLoadError(RuntimeError):
    """A TorchScript model could not be loaded; ``kind`` (see ERROR_KINDS) and ``path`` say why/where."""

    def __init__(self, message: str, *, kind: str = "corrupt", path: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model file does not exist ("JIT model not found: <path>")."""

    def __init__(self, path: str) -> None:
        ModelLoadError.__init__(self, f"JIT model not found: {path}", kind="not_found", path=path)
        self.filename = path

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0])


def _fail(kind: str, path: str, cause: str) -> ModelLoadError:
    return ModelLoadError(f"cannot load JIT model {path}: {cause}", kind=kind, path=path)


# --------------------------------------------------------------------------- archive checks (no torch)
def check_archive(path: str) -> Tuple[zipfile.ZipFile, str]:
    """Opens ``path`` as a TorchScript zip; returns (ZipFile, archive prefix) — caller closes.

    Raises ModelLoadError: not_found, not_a_file, not_zip, corrupt, not_torchscript.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelNotFoundError(path)
    if not os.path.isfile(path):
        raise _fail("not_a_file", path, "not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise _fail("not_a_file", path, f"unreadable: {exc}") from exc
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            raise _fail("corrupt", path, "truncated or corrupt zip archive (no central directory)")
        raise _fail("not_zip", path, "not a TorchScript archive (not a zip file; "
                                     "TorchScript files are written by torch.jit.save)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _fail("corrupt", path, f"corrupt zip archive: {exc}") from exc
    names = zf.namelist()
    if not names:
        zf.close()
        raise _fail("not_torchscript", path, "empty zip archive")
    prefix = names[0].split("/", 1)[0]
    has_code = any(n.startswith(prefix + "/code/") for n in names)
    has_data = (prefix + "/data.pkl") in names
    if not has_code:
        zf.close()
        what = ("a torch.save() file (a checkpoint/state dict?), not TorchScript; export it with "
                "atheria_core.export.export_model_to_jit" if has_data else "a zip archive that is not TorchScript")
        raise _fail("not_torchscript", path, what)
    return zf, prefix


def _meta_member(zf: zipfile.ZipFile) -> Optional[str]:
    for n in zf.namelist():
        if n.endswith("/extra/" + META_NAME) or n == "extra/" + META_NAME:
            return n
    return None


def read_metadata(path: str) -> Optional[Dict[str, Any]]:
    """``atheria_meta.json`` of a TorchScript file as a dict, or None when the file has none.

    Needs no torch.  Raises ModelLoadError for a missing/non-zip/corrupt file
    (``kind`` not_found / not_zip / corrupt / not_torchscript) and for metadata that is
    not a JSON object, of another format, or of a newer version (bad_metadata / incompatible).
    """
    zf, _ = check_archive(path)
    with zf:
        member = _meta_member(zf)
        if member is None:
            return None
        try:
            raw = zf.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC error, truncated member
            raise _fail("corrupt", path, f"corrupt archive member {member}: {exc}") from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail("bad_metadata", path, f"{META_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise _fail("bad_metadata", path, f"{META_NAME} must be a JSON object")
    if meta.get("format") != META_FORMAT:
        raise _fail("bad_metadata", path, f"{META_NAME} format is {meta.get('format')!r}, expected {META_FORMAT!r}")
    ver = meta.get("version")
    if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
        raise _fail("bad_metadata", path, f"{META_NAME} version must be an int >= 1, got {ver!r}")
    if ver > META_VERSION:
        raise _fail("incompatible", path, f"metadata version {ver} is newer than supported ({META_VERSION}); "
                                          "upgrade atheria_core")
    return meta


# --------------------------------------------------------------------------- torch side
@contextlib.contextmanager
def quiet_jit_deprecation() -> Iterator[None]:
    """Silences torch's "`torch.jit.*` is deprecated" DeprecationWarnings (torch >= 2.10):
    TorchScript is the file contract of the native engines (docs/torchscript.md)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\..*` is deprecated", category=DeprecationWarning)
        yield


def _import_torch(path: str):
    try:
        import torch
    except ImportError as exc:
        raise ModelLoadError(f"cannot load JIT model {path}: torch is not installed ({exc})",
                             kind="no_torch", path=path) from exc
    return torch


def _resolve_device(torch: Any, device: Any, path: str):
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise _fail("bad_device", path, f"invalid device {device!r}: {exc}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise _fail("cuda_unavailable", path, f"device {device!r} requested but CUDA is not available "
                                                  f"(torch {torch.__version__}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise _fail("cuda_unavailable", path, f"device {device!r}: only {torch.cuda.device_count()} "
                                                  "CUDA device(s)")
    elif dev.type != "cpu":
        raise _fail("bad_device", path, f"unsupported device {device!r}; use 'cpu' or 'cuda[:N]'")
    return dev


class TorchScriptModel:
    """A loaded TorchScript rule, callable on float32 NumPy batches.

    Attributes:
        path, device, metadata (dict or None), architecture (str or None), d_state (int or None),
        unitary (bool), has_memory (bool), receptive_radius (int; -1 = unknown/global),
        zero_preserving (bool; only set when the metadata records it),
        accepts_tiles (True: the sparse Engine may pass tiles of any size, not only p x p patches).

    Memory models keep *committed* (h, c) — the memory of the last completed step — and
    *pending* (h, c) from the last call.  A call reads the committed memory (zeros from
    ``init_memory(x)`` on the first call and after :meth:`reset_memory`); the engine calls
    :meth:`commit_memory` when its step succeeded and :meth:`discard_memory` when it failed.
    """

    def __init__(self, module: Any, path: str, device: Any, metadata: Optional[Dict[str, Any]]) -> None:
        self.module = module
        self.path = path
        self.device = device
        self.metadata = metadata
        meta = metadata or {}
        self.architecture: Optional[str] = meta.get("architecture")
        d = meta.get("d_state")
        self.d_state: Optional[int] = int(d) if isinstance(d, int) and not isinstance(d, bool) else None
        self.unitary = bool(meta.get("unitary", False))
        has_init = hasattr(module, "init_memory")
        self.has_memory = bool(meta.get("has_memory", False)) or (metadata is None and has_init)
        if self.has_memory and not has_init:
            raise _fail("bad_model", path, "metadata says has_memory but the module has no init_memory(x)")
        rr = meta.get("receptive_radius")
        self.receptive_radius = int(rr) if isinstance(rr, int) and not isinstance(rr, bool) and rr >= 0 else -1
        zp = meta.get("zero_preserving")
        if isinstance(zp, bool):
            self.zero_preserving = zp
        # TorchScript nets take any (B, C, H, W): the sparse Engine may evaluate them on tiles
        # with halos (used only when receptive_radius is known and <= the patch radius).
        self.accepts_tiles = True
        self._committed: Optional[Tuple[Any, Any]] = None
        self._pending: Optional[Tuple[Any, Any]] = None
        self._mem_shape: Optional[Tuple[int, ...]] = None

    def __repr__(self) -> str:
        return (f"TorchScriptModel({self.path!r}, device={str(self.device)!r}, architecture={self.architecture!r}, "
                f"has_memory={self.has_memory}, receptive_radius={self.receptive_radius})")

    def _to_tensor(self, batch: Any):
        import torch
        arr = np.asarray(batch)
        if arr.dtype != np.float32:
            raise ValueError(f"batch must be float32, got {arr.dtype}")
        if arr.ndim != 4:
            raise ValueError(f"batch must be 4-D (B, C, H, W), got shape {arr.shape}")
        if self.d_state is not None and arr.shape[1] != 2 * self.d_state:
            raise ValueError(f"batch must have {2 * self.d_state} channels (2*d_state), got shape {arr.shape}")
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            arr = np.array(arr, dtype=np.float32, order="C", copy=True)
        return torch.from_numpy(arr).to(self.device)

    @staticmethod
    def _to_numpy(t: Any, what: str) -> np.ndarray:
        import torch
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"model returned {type(t).__name__} for {what}, expected a tensor")
        return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())

    def __call__(self, batch: Any) -> np.ndarray:
        """float32 (B, C, H, W) -> float32 δ (B, C, H, W) (the model's own output shape)."""
        import torch
        x = self._to_tensor(batch)
        with torch.inference_mode():
            if not self.has_memory:
                out = self.module(x)
                if isinstance(out, (tuple, list)):
                    raise ValueError(f"model {self.path} returned a {type(out).__name__}; a stateless "
                                     "model must return one tensor")
                return self._to_numpy(out, "delta")
            if self._committed is not None and self._mem_shape != tuple(x.shape):
                raise ValueError(f"memory was initialised for input shape {self._mem_shape}, got "
                                 f"{tuple(x.shape)}; call reset_memory() first")
            if self._committed is None:
                h, c = self.module.init_memory(x)
                self._committed = (h, c)
                self._mem_shape = tuple(x.shape)
            h, c = self._committed
            res = self.module(x, h, c)
            if not isinstance(res, (tuple, list)) or len(res) != 3:
                raise ValueError(f"memory model {self.path} must return (delta, h, c)")
            delta, h2, c2 = res
            self._pending = (h2, c2)
            return self._to_numpy(delta, "delta")

    # memory protocol ----------------------------------------------------------------
    def commit_memory(self) -> None:
        """The last call's (h, c) become the memory for the next call (step succeeded)."""
        if self._pending is not None:
            self._committed = self._pending
            self._pending = None

    def discard_memory(self) -> None:
        """Forgets the last call's (h, c) (step failed); the committed memory is kept."""
        self._pending = None

    def reset_memory(self) -> None:
        """Drops all memory; the next call starts from ``init_memory(x)``."""
        self._committed = None
        self._pending = None
        self._mem_shape = None

    def get_memory(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Committed (h, c) as float32 NumPy copies (for snapshots), or None."""
        if self._committed is None:
            return None
        return (self._to_numpy(self._committed[0], "h").copy(), self._to_numpy(self._committed[1], "c").copy())

    def set_memory(self, h: Any, c: Any, input_shape: Tuple[int, ...]) -> None:
        """Restores committed memory (from a snapshot) for inputs of shape ``input_shape``."""
        import torch
        if not self.has_memory:
            raise ValueError("model has no memory")
        ht = torch.as_tensor(np.asarray(h, dtype=np.float32)).to(self.device)
        ct = torch.as_tensor(np.asarray(c, dtype=np.float32)).to(self.device)
        if ht.shape != ct.shape:
            raise ValueError(f"h and c must have the same shape, got {tuple(ht.shape)} and {tuple(ct.shape)}")
        self._committed = (ht, ct)
        self._pending = None
        self._mem_shape = tuple(int(v) for v in input_shape)


def load_model_for_engine(path: str, device: str = "cpu") -> TorchScriptModel:
    """Loads a TorchScript rule for the native engines (Python route, docs/torchscript.md).

    Args:
        path: the ``.pt`` file written by ``torch.jit.save`` (e.g. by export_model_to_jit).
        device: 'cpu', 'cuda' or 'cuda:N'; the model and its inputs live there.

    Returns:
        A :class:`TorchScriptModel`: ``model(batch float32 (B, C, H, W)) -> float32 (B, C, H, W)``.

    Raises:
        ModelLoadError (RuntimeError) naming the file and the cause; ``.kind`` is one of
        not_found (ModelNotFoundError, also a FileNotFoundError: "JIT model not found: <path>"),
        not_a_file, not_zip, corrupt, not_torchscript, bad_metadata, incompatible (torch or
        metadata version), no_torch, cuda_unavailable, bad_device, bad_model.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, got {type(path).__name__}")
    path = os.fspath(path)
    meta = read_metadata(path)  # validates the archive without torch
    torch = _import_torch(path)
    dev = _resolve_device(torch, device, path)
    try:
        with quiet_jit_deprecation():
            module = torch.jit.load(path, map_location=dev)
    except Exception as exc:  # RuntimeError from the deserializer, zip/CRC errors...
        msg = str(exc).strip().splitlines()
        first = msg[0] if msg else type(exc).__name__
        low = str(exc).lower()
        if "version" in low and ("support" in low or "newer" in low or "older" in low):
            raise _fail("incompatible", path, f"incompatible TorchScript version for torch {torch.__version__}: "
                                              f"{first}") from exc
        raise _fail("corrupt", path, f"torch.jit.load failed ({type(exc).__name__}: {first})") from exc
    module.eval()
    if meta is None:
        logger.info("%s has no %s; treating it as a stateless forward(x) model of unknown radius",
                    path, META_NAME)
    model = TorchScriptModel(module, path, dev, meta)
    logger.info("loaded %r", model)
    return model


def native_conv_model(path: str, meta: Dict[str, Any], *, atol: float = 1e-5) -> Any:
    """The built-in C conv stack equivalent to a TorchScript LOCAL_CONV file, or None.

    The file's metadata must declare ``native_equivalent = {"kind": "conv_stack", ...}``
    (written by export_model_to_jit for models with ``conv_model_spec``).  The weights are
    read from the TorchScript module; the result is checked against the TorchScript
    forward on a random input and refused (None, logged) if they differ by more than ``atol``.
    """
    from . import _core

    spec = meta.get("native_equivalent") or {}
    if spec.get("kind") != "conv_stack" or spec.get("bias"):
        return None
    torch = _import_torch(path)
    with quiet_jit_deprecation():
        module = torch.jit.load(path, map_location="cpu").eval()
    params = list(module.named_parameters())
    weights = [p.detach().cpu().numpy().astype(np.float32) for _, p in params]
    if len(weights) != int(spec.get("n_layers", -1)) or any(w.ndim != 4 for w in weights):
        logger.warning("%s: parameters %s do not form the declared conv stack; using TorchScript",
                       path, [n for n, _ in params])
        return None
    try:
        model = _core.ConvModel(weights, None, activation=str(spec.get("activation", "relu")))
    except (ValueError, TypeError) as exc:
        logger.warning("%s: cannot build the native conv stack (%s); using TorchScript", path, exc)
        return None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, weights[0].shape[1], 9, 11)).astype(np.float32)
    with torch.inference_mode():
        ref = module(torch.from_numpy(x)).numpy()
    diff = float(np.max(np.abs(model(x) - ref)))
    if not diff <= atol:
        logger.warning("%s: native conv stack differs from TorchScript by %.3g; using TorchScript", path, diff)
        return None
    return model


def load_model_for_native_engine(path: str, device: str = "cpu") -> Any:
    """The model for the C engines' ``load_model`` (see :func:`select_native_model`)."""
    return select_native_model(path, device)[0]


def select_native_model(path: str, device: str = "cpu") -> Tuple[Any, str]:
    """(model, route) for the C engines, fastest route first; route is 'builtin-conv', 'shim' or 'python'.

    1. A LOCAL_CONV-style file (metadata ``native_equivalent`` = conv_stack) on the CPU runs
       as the built-in C conv stack (no torch in the step; verified against the file at load).
       ``ATHERIA_NATIVE_CONV=0`` disables this.
    2. The LibTorch shim when built: an ``"atheria_core.model"`` capsule whose forward runs
       in C++ without the GIL.  ``ATHERIA_NO_SHIM=1`` disables it.
    3. The Python route: a :class:`TorchScriptModel` callable.

    All routes raise :class:`ModelLoadError` with the same kinds for unusable files.
    """
    from . import _torch_support

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, got {type(path).__name__}")
    path = os.fspath(path)
    meta = read_metadata(path)
    if meta and os.environ.get("ATHERIA_NATIVE_CONV", "1") != "0" and str(device) == "cpu":
        model = native_conv_model(path, meta)
        if model is not None:
            logger.info("%s runs as the built-in C conv stack", path)
            return model, "builtin-conv"
    if _torch_support.shim_available():
        return _torch_support.load_via_shim(path, device), "shim"
    logger.debug("LibTorch shim unavailable (%s); loading %s through the Python route",
                 _torch_support.unavailable_reason(), path)
    return load_model_for_engine(path, device), "python"

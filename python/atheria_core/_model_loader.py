"""The one owner of model loading: which route runs a model file in an engine.

``Engine.load_model`` / ``DenseEngine.load_model`` (both backends) and
:class:`~atheria_core.wrapper.NativeEngineWrapper` all come here.  The C
extension imports nothing for this: at import this module registers
:func:`load_for_engine` with ``_core._set_model_loader`` and the extension's
``load_model`` calls it as ``loader(engine, path)``.

:func:`select_model` tries the routes fastest first and takes the first that is
exact for the engine (docs/torchscript.md, "Routes"):

1. ``builtin-conv`` — a LOCAL_CONV TorchScript file (metadata ``native_equivalent``) runs as
   the C conv stack (C backend, CPU; checked against the file's forward at load).
2. ``aoti-shim`` — an AOTInductor ``.pt2`` package for the engine's input shape (a DenseEngine of
   the package's grid size), run in C++ by the LibTorch shim without the GIL.  Given a
   TorchScript file, its sibling package ``<base>.g<G>.pt2`` (written by
   :func:`atheria_core.export.export_model`) is used when it belongs to the same checkpoint
   (sha256) and torch version.
3. ``aoti-python`` — the same package through ``torch._inductor.aoti_load_package`` (no shim).
   Routes 2–3 are skipped for a sibling package whose route-speed record (written by
   ``export_model``, :mod:`._route_speed`) says frozen TorchScript ran faster.
4. ``torchscript-shim`` — the TorchScript file in the shim, frozen + ``optimize_for_inference``
   where that matches the plain forward within 1e-5.
5. ``torchscript-python`` — ``torch.jit.load`` in Python (frozen likewise).

The route that ran and the reasons the faster ones were skipped are logged (INFO) and
returned in a :class:`LoadReport`.  Metadata comes from the one reader,
:func:`atheria_core._metadata.read_metadata` (:class:`ModelMetadata`).  Every failure is a
:class:`ModelLoadError` "cannot load model <file>: <cause>" with a ``kind`` of the one
error table (include/atheria/load_error.h).

Environment: ``ATHERIA_NATIVE_CONV=0`` skips route 1, ``ATHERIA_NO_AOTI=1`` routes 2–3,
``ATHERIA_NO_SHIM=1`` routes 2 and 4, ``ATHERIA_NO_OPTIMIZE=1`` the freezing of 4–5,
``ATHERIA_ROUTE_SPEED=0`` the route-speed records.

This module imports without torch; torch is imported when a model is loaded.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._metadata import (AOTI_FORMAT, ERROR_KINDS, META_FORMAT, META_NAME, META_VERSION, ModelLoadError,
                        ModelMetadata, ModelNotFoundError, check_archive, fail, read_metadata)

logger = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "ModelNotFoundError", "ModelMetadata", "TorchScriptModel", "AotiModel", "LoadReport",
           "load_model_for_engine", "load_aoti_for_engine", "select_model", "load_for_engine", "read_metadata",
           "check_archive", "quiet_jit_deprecation", "aoti_path_for", "META_NAME", "META_FORMAT", "AOTI_FORMAT",
           "META_VERSION", "ERROR_KINDS", "ROUTES"]

#: every route, fastest first
ROUTES = ("builtin-conv", "aoti-shim", "aoti-python", "torchscript-shim", "torchscript-python")
#: tolerance (max |diff| relative to max(1, max |y|)) for accepting a frozen/optimised module
OPTIMIZE_TOL = 1e-5

_fail = fail  # older name, used by callers of this module


@dataclass
class LoadReport:
    """What :func:`select_model` did: the route that ran, on which file, and why faster routes were skipped."""

    route: str
    path: str
    requested: str
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    note: str = ""

    def summary(self) -> str:
        s = f"{self.requested} runs on route {self.route}"
        if self.path != self.requested:
            s += f" ({self.path})"
        if self.note:
            s += f"; {self.note}"
        if self.skipped:
            s += "; skipped " + "; ".join(f"{r}: {why}" for r, why in self.skipped)
        return s


@contextlib.contextmanager
def quiet_jit_deprecation() -> Iterator[None]:
    """Silences torch's "`torch.jit.*` is deprecated" DeprecationWarnings (torch >= 2.10) around the
    TorchScript calls of this package: TorchScript stays a supported model format
    (docs/torchscript.md) next to its successor, the .pt2 package."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\..*` is deprecated", category=DeprecationWarning)
        yield


def _import_torch(path: str):
    try:
        import torch
    except ImportError as exc:
        raise fail("no_torch", path, f"torch is not installed ({exc})") from exc
    return torch


def _resolve_device(torch: Any, device: Any, path: str):
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise fail("bad_device", path, f"invalid device {device!r}: {exc}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise fail("cuda_unavailable", path, f"device {device!r} requested but CUDA is not available "
                                                 f"(torch {torch.__version__}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise fail("cuda_unavailable", path, f"device {device!r}: only {torch.cuda.device_count()} "
                                                 "CUDA device(s)")
    elif dev.type != "cpu":
        raise fail("bad_device", path, f"unsupported device {device!r}; use 'cpu' or 'cuda[:N]'")
    return dev


def _probe_tensor(torch: Any, shape: Sequence[int], phase: float, dev: Any):
    """Deterministic pseudo-random values (no use of torch's global RNG)."""
    n = int(np.prod(shape))
    return (torch.sin(torch.arange(n, dtype=torch.float32) * 0.7071 + phase) * 1.5).reshape(tuple(shape)).to(dev)


def _rel_diff(torch: Any, a: Any, b: Any) -> float:
    ta = list(a) if isinstance(a, (tuple, list)) else [a]
    tb = list(b) if isinstance(b, (tuple, list)) else [b]
    if len(ta) != len(tb):
        return float("inf")
    worst = 0.0
    for x, y in zip(ta, tb):
        if tuple(x.shape) != tuple(y.shape):
            return float("inf")
        x64, y64 = x.double().cpu(), y.double().cpu()
        d = float((x64 - y64).abs().max()) / max(1.0, float(x64.abs().max())) if x64.numel() else 0.0
        if not d <= worst:
            worst = d
    return worst


def optimize_script_module(torch: Any, module: Any, has_memory: bool, probe_shape: Sequence[int],
                           dev: Any) -> Tuple[Any, str]:
    """(module, note): the frozen + ``optimize_for_inference`` copy when its outputs match the plain
    module within :data:`OPTIMIZE_TOL` on a probe input of ``probe_shape``, else the plain module."""
    if os.environ.get("ATHERIA_NO_OPTIMIZE", "") == "1":
        return module, "not optimised (ATHERIA_NO_OPTIMIZE=1)"
    want, why = shim_should_optimize(probe_shape)
    if not want:
        return module, why
    keep = ["init_memory"] if has_memory else []
    try:
        with quiet_jit_deprecation():
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(module, preserved_attrs=keep),
                                                      other_methods=keep)
            with torch.no_grad():
                x = _probe_tensor(torch, probe_shape, 0.3, dev)
                if has_memory:
                    h, c = module.init_memory(x)
                    diff = _rel_diff(torch, (h, c), frozen.init_memory(x))
                    h = _probe_tensor(torch, h.shape, 1.1, dev) * 0.5
                    c = _probe_tensor(torch, c.shape, 2.3, dev) * 0.5
                    diff = max(diff, _rel_diff(torch, module(x, h, c), frozen(x, h, c)))
                else:
                    diff = _rel_diff(torch, module(x), frozen(x))
    except Exception as exc:  # noqa: BLE001 - any failure keeps the plain module
        return module, f"freeze/optimize failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); " \
                       "kept the plain module"
    if not diff <= OPTIMIZE_TOL:
        return module, f"frozen module differs by {diff:.3g} (> {OPTIMIZE_TOL:g}); kept the plain module"
    return frozen, f"frozen + optimize_for_inference, max rel. diff {diff:.3g} on {list(probe_shape)}"


#: Grids below this many cells run the plain module: optimize_for_inference's layout
#: conversions cost more than they save there (the 32x32 demo U-Net ran 0.84x of the plain
#: module; at 128x128 and 256x256 the frozen one was faster).  A size rule, not a timing at
#: load, so that every process makes the same choice and a resumed run stays bit-identical.
OPTIMIZE_MIN_CELLS = 128 * 128


def shim_should_optimize(probe_shape: Optional[Sequence[int]]) -> Tuple[bool, str]:
    """Whether to try freeze + optimise on a (N, C, H, W) ``probe_shape`` (None: unknown, try);
    the shim and the Python route both then keep the result only when exact."""
    if probe_shape is not None and int(probe_shape[-1]) * int(probe_shape[-2]) < OPTIMIZE_MIN_CELLS:
        return False, (f"not optimised: grid {list(probe_shape)[-2:]} below {OPTIMIZE_MIN_CELLS} cells, where "
                       "optimize_for_inference is slower")
    return True, ""


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

    def __init__(self, module: Any, path: str, device: Any, metadata: Optional[ModelMetadata]) -> None:
        self.module = module
        self.path = path
        self.device = device
        self.metadata = metadata
        self.architecture: Optional[str] = metadata.architecture if metadata else None
        self.d_state: Optional[int] = metadata.d_state if metadata else None
        self.unitary = bool(metadata.unitary) if metadata else False
        has_init = hasattr(module, "init_memory")
        self.has_memory = metadata.has_memory if metadata else has_init
        if self.has_memory and not has_init:
            raise fail("bad_model", path, "metadata says has_memory but the module has no init_memory(x)")
        rr = metadata.receptive_radius if metadata else None
        self.receptive_radius = -1 if rr is None else rr
        zp = metadata.zero_preserving if metadata else None
        if zp is not None:
            self.zero_preserving = zp
        #: "frozen + optimize_for_inference ..." or why the plain module runs
        self.optimization = "not optimised"
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


def load_model_for_engine(path: str, device: str = "cpu", *, optimize: bool = True,
                          probe_shape: Optional[Sequence[int]] = None) -> TorchScriptModel:
    """Loads a TorchScript rule for the native engines (route ``torchscript-python``).

    Args:
        path: the ``.pt`` file written by ``torch.jit.save`` (e.g. by export_model).
        device: 'cpu', 'cuda' or 'cuda:N'; the model and its inputs live there.
        optimize: freeze + ``optimize_for_inference`` when exact (:func:`optimize_script_module`).
        probe_shape: (B, C, H, W) input used to check the optimised module; default (1, 2·d, 16, 16).

    Returns:
        A :class:`TorchScriptModel`: ``model(batch float32 (B, C, H, W)) -> float32 (B, C, H, W)``.

    Raises:
        ModelLoadError naming the file and the cause (``kind`` of ERROR_KINDS); ModelNotFoundError
        (also a FileNotFoundError: "JIT model not found: <path>") for a missing file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, got {type(path).__name__}")
    path = os.fspath(path)
    meta = read_metadata(path)  # validates the archive without torch
    if meta is not None and meta.is_aoti:
        raise fail("not_torchscript", path, "an AOTInductor .pt2 package, not TorchScript "
                                            "(load it with load_aoti_for_engine or Engine.load_model)")
    torch = _import_torch(path)
    dev = _resolve_device(torch, device, path)
    try:
        with quiet_jit_deprecation():
            module = torch.jit.load(path, map_location=dev)
    except Exception as exc:  # RuntimeError from the deserializer, zip/CRC errors, bad UTF-8 code...
        msg = str(exc).strip().splitlines()
        first = msg[0] if msg else type(exc).__name__
        low = str(exc).lower()
        if "version" in low and ("support" in low or "newer" in low or "older" in low):
            raise fail("incompatible", path, f"incompatible TorchScript version for torch {torch.__version__}: "
                                             f"{first}") from exc
        if isinstance(exc, UnicodeDecodeError) or "utf-8" in low or "utf8" in low:
            raise fail("corrupt", path, f"a code member is not valid UTF-8 ({first})") from exc
        raise fail("corrupt", path, f"torch.jit.load failed ({type(exc).__name__}: {first})") from exc
    module.eval()
    if meta is None:
        logger.info("%s has no %s; treating it as a stateless forward(x) model of unknown radius",
                    path, META_NAME)
    model = TorchScriptModel(module, path, dev, meta)
    if optimize:
        d = model.d_state or 1
        shape = tuple(probe_shape) if probe_shape else (1, 2 * d, 16, 16)
        model.module, model.optimization = optimize_script_module(torch, module, model.has_memory, shape, dev)
    logger.info("loaded %r (%s)", model, model.optimization)
    return model


class AotiModel:
    """An AOTInductor package (route ``aoti-python``), callable on float32 NumPy batches of the one
    input shape it was compiled for (``metadata.input_shape``, (1, 2·d, H, W)).

    Memory models: h, c start as zeros of ``metadata.memory_shape``; same commit / discard /
    reset protocol as :class:`TorchScriptModel`.
    """

    accepts_tiles = False

    def __init__(self, runner: Any, path: str, device: Any, metadata: ModelMetadata) -> None:
        self.runner = runner
        self.path = path
        self.device = device
        self.metadata = metadata
        self.d_state = metadata.d_state
        self.architecture = metadata.architecture
        self.unitary = metadata.unitary
        self.has_memory = metadata.has_memory
        self.receptive_radius = -1 if metadata.receptive_radius is None else metadata.receptive_radius
        if metadata.zero_preserving is not None:
            self.zero_preserving = metadata.zero_preserving
        self.input_shape = tuple(metadata.input_shape or ())
        self._committed: Optional[Tuple[Any, Any]] = None
        self._pending: Optional[Tuple[Any, Any]] = None

    def __repr__(self) -> str:
        return f"AotiModel({self.path!r}, input_shape={self.input_shape}, has_memory={self.has_memory})"

    def __call__(self, batch: Any) -> np.ndarray:
        import torch
        arr = np.asarray(batch)
        if arr.dtype != np.float32 or tuple(arr.shape) != self.input_shape:
            raise ValueError(f"AOTInductor model {self.path} was compiled for float32 inputs {self.input_shape}, "
                             f"got {arr.dtype} {tuple(arr.shape)}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        with torch.inference_mode():
            if not self.has_memory:
                out = self.runner(x)
                delta = out[0] if isinstance(out, (tuple, list)) else out
            else:
                self._pending = None
                if self._committed is None:
                    z = torch.zeros(self.metadata.memory_shape, dtype=torch.float32, device=self.device)
                    self._committed = (z, z.clone())
                delta, h, c = self.runner(x, *self._committed)
                self._pending = (h, c)
        return np.ascontiguousarray(delta.detach().to("cpu", torch.float32).numpy())

    def commit_memory(self) -> None:
        if self._pending is not None:
            self._committed, self._pending = self._pending, None

    def discard_memory(self) -> None:
        self._pending = None

    def reset_memory(self) -> None:
        self._committed = self._pending = None


def load_aoti_for_engine(path: str, device: str = "cpu",
                         metadata: Optional[ModelMetadata] = None) -> AotiModel:
    """Loads a .pt2 package with ``torch._inductor.aoti_load_package`` (route ``aoti-python``)."""
    path = os.fspath(path)
    meta = metadata if metadata is not None else read_metadata(path)
    if meta is None or not meta.is_aoti:
        raise fail("not_torchscript", path, "not an AOTInductor package written by export_model")
    torch = _import_torch(path)
    dev = _resolve_device(torch, device, path)
    if meta.device and meta.device != dev.type:
        raise fail("mismatch", path, f"package compiled for device {meta.device!r}, requested {str(dev)!r}")
    try:
        import torch._inductor as inductor
        runner = inductor.aoti_load_package(path, device_index=dev.index if dev.index is not None else -1)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad package
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise fail("corrupt", path, f"aoti_load_package failed ({type(exc).__name__}: {first})") from exc
    return AotiModel(runner, path, dev, meta)


def native_conv_model(path: str, meta: ModelMetadata, *, atol: float = 1e-5) -> Any:
    """The built-in C conv stack equivalent to a TorchScript LOCAL_CONV file, or None.

    The file's metadata must declare ``native_equivalent = {"kind": "conv_stack", ...}``
    (written by export_model_to_jit for models with ``conv_model_spec``).  The weights are
    read from the TorchScript module; the result is checked against the TorchScript
    forward on a random input and refused (None, logged) if they differ by more than ``atol``.
    """
    from . import _core

    spec = meta.native_equivalent
    if spec is None or spec.kind != "conv_stack" or spec.bias:
        return None
    torch = _import_torch(path)
    with quiet_jit_deprecation():
        module = torch.jit.load(path, map_location="cpu").eval()
    params = list(module.named_parameters())
    weights = [p.detach().cpu().numpy().astype(np.float32) for _, p in params]
    if len(weights) != spec.n_layers or any(w.ndim != 4 for w in weights):
        logger.warning("%s: parameters %s do not form the declared conv stack; using TorchScript",
                       path, [n for n, _ in params])
        return None
    try:
        model = _core.ConvModel(weights, None, activation=spec.activation)
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


# --------------------------------------------------------------------------- route selection
def aoti_path_for(path: str, grid_size: int) -> str:
    """The .pt2 package export_model writes next to a TorchScript file for one grid size:
    ``checkpoint_ep3.jit.pt`` -> ``checkpoint_ep3.g128.pt2``."""
    base = path[:-len(".jit.pt")] if path.endswith(".jit.pt") else os.path.splitext(path)[0]
    return f"{base}.g{int(grid_size)}.pt2"


def _engine_facts(engine: Any) -> Tuple[str, str, int, int, str]:
    """(backend 'c'/'python', kind 'dense'/'sparse', d_state, grid_size, device) of an engine."""
    # atheria_core.Engine / DenseEngine subclass the backend's types (snapshots, ROI,
    # analysis): the backend is the one a base class comes from.
    mro = type(engine).__mro__
    backend = "c" if any(c.__module__.startswith("atheria_core._core") for c in mro) else "python"
    kind = "dense" if any(c.__name__ == "DenseEngine" for c in mro) else "sparse"
    return backend, kind, int(engine.d_state), int(engine.grid_size), str(getattr(engine, "device", "cpu"))


def _aoti_usable(meta: ModelMetadata, kind: str, d: int, grid: int, device: str,
                 ts_meta: Optional[ModelMetadata]) -> Optional[str]:
    """None if the package fits the engine, else why not."""
    import torch
    try:
        from torch._inductor import aoti_load_package  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no AOTInductor package loader (torch >= 2.6 needed)"
    if kind != "dense":
        return "the sparse Engine evaluates tiles of varying size; a .pt2 package has one input shape"
    if meta.input_shape != (1, 2 * d, grid, grid):
        return f"package compiled for inputs {list(meta.input_shape or ())}, the engine needs [1, {2 * d}, {grid}, {grid}]"
    if meta.torch_version and meta.torch_version != str(torch.__version__):
        return f"package compiled with torch {meta.torch_version}, running torch {torch.__version__}"
    if meta.device and meta.device != device.split(":", 1)[0]:
        return f"package compiled for device {meta.device!r}, engine device {device!r}"
    if ts_meta is not None and ts_meta.checkpoint_sha256 != meta.checkpoint_sha256:
        return "package belongs to another checkpoint (sha256 differs from the TorchScript file's)"
    return None


def select_model(engine: Any, path: Any) -> Tuple[Any, LoadReport]:
    """(model, report) for ``engine`` (an Engine or DenseEngine of either backend), fastest exact route
    first (module docstring).  The model is anything ``engine.set_model`` accepts.

    Raises:
        TypeError for a path that is not str/os.PathLike; ModelLoadError ("cannot load model <file>:
        <cause>") otherwise, e.g. kind ``mismatch`` when the file's d_state is not the engine's.
    """
    from . import _torch_support as ts

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    backend, kind, d, grid, device = _engine_facts(engine)
    meta = read_metadata(path)
    if meta is not None and meta.d_state is not None and meta.d_state != d:
        raise fail("mismatch", path, f"the model has d_state {meta.d_state}, the engine {d}")
    report = LoadReport(route="", path=path, requested=path)
    skip = report.skipped
    no_aoti = os.environ.get("ATHERIA_NO_AOTI", "") == "1"
    shim_ok = backend == "c" and ts.shim_available()
    shim_why = ("the Python backend cannot run shim models" if backend != "c"
                else ts.unavailable_reason() or "")

    def done(model: Any, route: str, file: str, note: str = "") -> Tuple[Any, LoadReport]:
        report.route, report.path, report.note = route, file, note
        logger.info("atheria_core: %s", report.summary())
        return model, report

    # ---- an explicit .pt2 package: only the AOTInductor routes
    if meta is not None and meta.is_aoti:
        why = _aoti_usable(meta, kind, d, grid, device, None)
        if why is not None:
            raise fail("mismatch", path, why)
        if shim_ok:
            return done(ts.load_aoti_via_shim(path, device, meta), "aoti-shim", path)
        skip.append(("aoti-shim", shim_why))
        return done(load_aoti_for_engine(path, device, meta), "aoti-python", path)

    # ---- 1. the built-in C conv stack
    if meta is not None and meta.native_equivalent is not None:
        if os.environ.get("ATHERIA_NATIVE_CONV", "1") == "0":
            skip.append(("builtin-conv", "ATHERIA_NATIVE_CONV=0"))
        elif backend != "c":
            skip.append(("builtin-conv", "the Python backend has no C conv stack"))
        elif device != "cpu":
            skip.append(("builtin-conv", f"device {device} (the C conv stack runs on the CPU)"))
        else:
            model = native_conv_model(path, meta)
            if model is not None:
                return done(model, "builtin-conv", path)
            skip.append(("builtin-conv", "the file's parameters do not reproduce its forward as a conv stack"))

    # ---- 2./3. a sibling .pt2 package for this grid size
    if no_aoti:
        skip.append(("aoti", "ATHERIA_NO_AOTI=1"))
    elif kind != "dense":
        skip.append(("aoti", "the sparse Engine evaluates tiles of varying size; .pt2 packages have one shape"))
    else:
        pt2 = aoti_path_for(path, grid)
        if not os.path.isfile(pt2):
            why = f"no package {os.path.basename(pt2)} (export_model(..., aoti=True) writes it)"
            try:
                from .export import aoti_unavailable_reason
                cannot = aoti_unavailable_reason()
            except ImportError as exc:  # no torch
                cannot = f"torch is not importable ({exc})"
            if cannot:
                why += f", and none can be compiled here: {cannot}"
            skip.append(("aoti", why))
        else:
            try:
                pmeta = read_metadata(pt2)
                why = (_aoti_usable(pmeta, kind, d, grid, device, meta) if pmeta is not None and pmeta.is_aoti
                       else "not an atheria .pt2 package")
                if why is None:
                    from . import _route_speed
                    why = _route_speed.torchscript_faster(pt2)
                if why is not None:
                    skip.append(("aoti", why))
                elif shim_ok:
                    return done(ts.load_aoti_via_shim(pt2, device, pmeta), "aoti-shim", pt2)
                else:
                    skip.append(("aoti-shim", shim_why))
                    return done(load_aoti_for_engine(pt2, device, pmeta), "aoti-python", pt2)
            except ModelLoadError as exc:  # a stale or damaged cache file: the TorchScript file still works
                logger.warning("atheria_core: ignoring %s: %s", pt2, exc)
                skip.append(("aoti", str(exc)))

    # ---- 4./5. TorchScript
    probe = (1, 2 * d, grid, grid) if kind == "dense" else None
    if shim_ok:
        want, why = shim_should_optimize(probe)
        capsule, optimized, note = ts.load_via_shim(path, device, meta, optimize=want, probe_shape=probe,
                                                    with_info=True)
        return done(capsule, "torchscript-shim", path, why or note)
    skip.append(("torchscript-shim", shim_why))
    model = load_model_for_engine(path, device, probe_shape=probe)
    return done(model, "torchscript-python", path, model.optimization)


def load_for_engine(engine: Any, path: Any) -> Any:
    """The model for ``engine.load_model(path)`` (registered with the C extension; used by the
    pure-Python backend the same way)."""
    return select_model(engine, path)[0]


def _register() -> None:
    try:
        from . import _core
    except ImportError:
        return
    setter = getattr(_core, "_set_model_loader", None)
    if setter is not None:
        setter(load_for_engine)


_register()

"""The public ``Engine`` / ``DenseEngine``: the backend's types plus snapshots, ROI views and analysis.

:func:`engine_types` subclasses a backend's (``_core`` or ``_fallback``) engine types with
:class:`SparseEngineAPI` / :class:`DenseEngineAPI`, which add

* ``snapshot()`` / ``restore(snap)`` / ``save_snapshot(path)`` (docs/snapshots.md),
* ``to_dense(roi=None, z=0)``, ``compute_visualization(viz_type, roi=None, z=0, ...)``,
* ``analyze(roi=None, z=0)`` (definitions in :mod:`atheria_core.analysis`; the C backend
  computes it in ``src/core/analysis.c``),
* ``matter_in_roi(roi=None, z=0)`` (sparse Engine; cost with the region and its matter),

and record where the model came from (``model_source``), so that a snapshot can say how
to get it back.  :func:`engine_from_snapshot` is the dispatch of ``load_snapshot``.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from . import analysis as _analysis
from ._version import __version__
from .snapshot import Snapshot, SnapshotError, file_sha256

logger = logging.getLogger("atheria_core")

__all__ = ["engine_types", "engine_from_snapshot", "SparseEngineAPI", "DenseEngineAPI", "describe_model",
           "model_from_description"]

SPARSE_OPTIONS = ("d_state", "device", "grid_size", "background", "extent", "threshold", "gamma_decay",
                  "unitary", "seed", "vacuum_strength", "patch")
DENSE_OPTIONS = ("grid_size", "d_state", "device", "gamma_decay", "unitary", "seed", "vacuum_strength", "extent")


def _is_c(engine: Any) -> bool:
    return type(engine).__module__.startswith("atheria_core._core") or any(
        c.__module__ == "atheria_core._core" for c in type(engine).__mro__)


def _core():
    from . import _core
    return _core


# ---------------------------------------------------------------- model descriptions
def describe_model(model: Any) -> Tuple[Optional[Dict[str, Any]], Dict[str, np.ndarray]]:
    """(description, arrays) of a model for a snapshot.

    Built-in models by value ('zero'; 'conv' with its weights when they can be read),
    a TorchScript model by path + sha256 ('file'), anything else as 'callable' (not saved).
    """
    if model is None:
        return None, {}
    name = type(model).__name__
    if name == "ZeroModel":
        return {"type": "zero"}, {}
    if name == "ConvModel":
        weights = getattr(model, "weights", None)
        if weights is not None:
            biases = list(getattr(model, "biases", None) or [None] * len(weights))
            arrays = {f"model_w{i}": np.asarray(w, dtype=np.float32) for i, w in enumerate(weights)}
            arrays.update({f"model_b{i}": np.asarray(b, dtype=np.float32) for i, b in enumerate(biases)
                           if b is not None})
            return {"type": "conv", "activation": str(model.activation), "n_layers": len(weights),
                    "bias": [b is not None for b in biases]}, arrays
        return {"type": "callable", "repr": repr(model)[:200],
                "why": "the C ConvModel does not expose its weights"}, {}
    path = getattr(model, "path", None)
    if isinstance(path, str) and os.path.isfile(path):
        return {"type": "file", "path": os.path.abspath(path), "sha256": file_sha256(path)}, {}
    return {"type": "callable", "repr": repr(model)[:200]}, {}


def _file_description(path: str) -> Dict[str, Any]:
    return {"type": "file", "path": os.path.abspath(path), "sha256": file_sha256(path)}


def model_from_description(desc: Optional[Dict[str, Any]], arrays: Dict[str, np.ndarray], backend: Any,
                           source: str) -> Tuple[Any, Optional[str]]:
    """(model or None, file path to load_model or None) for a saved description; warns when
    the model cannot come back (a callable, or a file that is gone or changed)."""
    if desc is None:
        return None, None
    kind = desc.get("type")
    if kind == "zero":
        return backend.ZeroModel(), None
    if kind == "conv":
        n = int(desc.get("n_layers", 0))
        try:
            weights = [arrays[f"model_w{i}"] for i in range(n)]
        except KeyError as exc:
            raise SnapshotError(f"snapshot {source}: conv model weight {exc} missing", kind="corrupt",
                                path=source) from None
        biases = [arrays.get(f"model_b{i}") for i in range(n)]
        return backend.ConvModel(weights, biases if any(b is not None for b in biases) else None,
                                 activation=str(desc.get("activation", "relu"))), None
    if kind == "file":
        path = str(desc.get("path"))
        if not os.path.isfile(path):
            warnings.warn(f"snapshot {source}: model file {path} no longer exists; the engine has no model "
                          "(set_model / load_model)", RuntimeWarning, stacklevel=3)
            return None, None
        if file_sha256(path) != desc.get("sha256"):
            warnings.warn(f"snapshot {source}: model file {path} changed since the snapshot (sha256 differs); "
                          "the engine has no model (load it yourself if that is intended)",
                          RuntimeWarning, stacklevel=3)
            return None, None
        return None, path
    warnings.warn(f"snapshot {source}: the model was a Python callable ({desc.get('repr', '?')}), which is not "
                  "saved; the caller must set it (set_model, or load_snapshot(path, model=...))",
                  RuntimeWarning, stacklevel=3)
    return None, None


# ---------------------------------------------------------------- memory (ConvLSTM) access
def _model_obj(engine: Any) -> Any:
    if _is_c(engine):
        return _core()._model_object(engine)
    spec = getattr(engine, "_model", None)
    return None if spec is None else spec.obj


def _get_memory(engine: Any) -> Optional[Dict[str, Any]]:
    """The committed model memory: {"input_shape", "h", "c"} or {"flat"} or None."""
    m = _model_obj(engine)
    if m is None:
        return None
    if callable(getattr(m, "get_memory", None)):
        mem = m.get_memory()
        if mem is None:
            return None
        h, c = mem
        shape = getattr(m, "_mem_shape", None)
        return {"h": np.asarray(h, dtype=np.float32), "c": np.asarray(c, dtype=np.float32),
                "input_shape": None if shape is None else [int(v) for v in shape]}
    if _is_c(engine) and type(m).__name__ == "PyCapsule":
        flat = _core()._capsule_memory_get(m)
        return None if flat is None else {"flat": np.asarray(flat, dtype=np.float32)}
    return None


def _set_memory(engine: Any, meta: Optional[Dict[str, Any]], arrays: Dict[str, np.ndarray], source: str) -> None:
    if meta is None:
        return
    m = _model_obj(engine)
    if m is None:
        warnings.warn(f"snapshot {source}: it holds model memory but the engine has no model to put it in",
                      RuntimeWarning, stacklevel=3)
        return
    if "flat" in meta or "memory_flat" in arrays:
        if not (_is_c(engine) and type(m).__name__ == "PyCapsule"):
            raise SnapshotError(f"snapshot {source}: its memory was saved from a LibTorch-shim model; the "
                                f"engine's model ({type(m).__name__}) cannot take it", kind="mismatch", path=source)
        _core()._capsule_memory_set(m, arrays["memory_flat"])
        return
    h, c = arrays.get("memory_h"), arrays.get("memory_c")
    if h is None or c is None:
        raise SnapshotError(f"snapshot {source}: memory arrays missing", kind="corrupt", path=source)
    if callable(getattr(m, "set_memory", None)):
        shape = meta.get("input_shape")
        if shape is None:
            g, d = engine.grid_size, engine.d_state
            shape = [1, 2 * d, g, g]
        m.set_memory(h, c, tuple(shape))
        return
    if _is_c(engine) and type(m).__name__ == "PyCapsule":
        _core()._capsule_memory_set(m, np.concatenate([h.ravel(), c.ravel()]).astype(np.float32))
        return
    raise SnapshotError(f"snapshot {source}: the engine's model ({type(m).__name__}) has no memory to restore",
                        kind="mismatch", path=source)


def _memory_section(engine: Any) -> Tuple[Optional[Dict[str, Any]], Dict[str, np.ndarray]]:
    mem = _get_memory(engine)
    if mem is None:
        return None, {}
    if "flat" in mem:
        return {"flat": True}, {"memory_flat": mem["flat"]}
    return ({"input_shape": mem["input_shape"], "h_shape": list(mem["h"].shape), "c_shape": list(mem["c"].shape)},
            {"memory_h": mem["h"], "memory_c": mem["c"]})


def _roi_or_window(roi: Optional[Sequence[int]], g: int) -> Sequence[int]:
    return (0, 0, g, g) if roi is None else roi


def _dense_roi(roi: Optional[Sequence[int]], z: int, g: int) -> Tuple[int, int, int, int]:
    from .motor import _check_roi
    if isinstance(z, bool) or not isinstance(z, (int, np.integer)):
        raise TypeError(f"z must be an int, got {type(z).__name__}")
    if int(z) != 0:
        raise ValueError(f"z: a DenseEngine has the one plane z = 0, got {z}")
    return _check_roi(roi, g, g)


class _SnapshotMixin:
    """What both engine kinds share: model bookkeeping and save_snapshot."""

    _ENGINE = ""
    _OPTIONS: Tuple[str, ...] = ()

    def set_model(self, model: Any) -> None:
        super().set_model(model)  # type: ignore[misc]
        self.model_source = None if model is None else model

    def load_model(self, path: Any) -> bool:
        ok = super().load_model(path)  # type: ignore[misc]
        if ok:
            self.model_source = _file_description(os.fspath(path))
        return ok

    def options(self) -> Dict[str, Any]:
        """The constructor options (keyword -> value)."""
        return {k: getattr(self, k) for k in self._OPTIONS}

    def _model_meta(self) -> Tuple[Optional[Dict[str, Any]], Dict[str, np.ndarray]]:
        src = getattr(self, "model_source", None)
        if isinstance(src, dict):
            return dict(src), {}
        if src is None and not self.has_model():  # type: ignore[attr-defined]
            return None, {}
        return describe_model(src if src is not None else _model_obj(self))

    def _base_meta(self) -> Dict[str, Any]:
        import atheria_core as ac
        model, marrays = self._model_meta()
        mem, memarrays = _memory_section(self)
        self._pending_arrays = {**marrays, **memarrays}
        return {"engine": self._ENGINE, "atheria_core": __version__, "backend": getattr(ac, "BACKEND", "?"),
                "options": self.options(), "step": int(self.get_step_count()),  # type: ignore[attr-defined]
                "model": model, "memory": mem}

    def _check_snapshot(self, snap: Snapshot, source: str = "<memory>") -> None:
        if not isinstance(snap, Snapshot):
            raise TypeError(f"snap must be a Snapshot, got {type(snap).__name__}")
        if snap.engine != self._ENGINE:
            raise SnapshotError(f"snapshot {source}: it is of a {snap.engine}, not a {self._ENGINE}",
                                kind="mismatch", path=source)
        saved = snap.meta.get("options", {})
        for k in self._OPTIONS:
            if k == "device":
                continue
            if k in saved and saved[k] != getattr(self, k):
                raise SnapshotError(f"snapshot {source}: option {k}={saved[k]!r} differs from this engine's "
                                    f"{getattr(self, k)!r}; load_snapshot() builds a matching engine",
                                    kind="mismatch", path=source)

    def save_snapshot(self, path: Any) -> str:
        """Writes ``snapshot()`` to ``path`` atomically; returns the path."""
        from .snapshot import write_snapshot_file
        return write_snapshot_file(path, self.snapshot())  # type: ignore[attr-defined]


class SparseEngineAPI(_SnapshotMixin):
    """Snapshots, ROI views and analysis of the sparse ``Engine``."""

    _ENGINE = "Engine"
    _OPTIONS = SPARSE_OPTIONS

    def _set_step(self, step: int) -> None:
        if _is_c(self):
            _core()._set_step_count(self, int(step))
        else:
            self._step = int(step)

    def matter_in_roi(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """(coords (N, 3) int64, states (N, d) complex64) of the matter inside roi in plane z
        (all matter when roi is None).  Cost grows with the region and its matter."""
        if _is_c(self):
            return _core()._matter_in_roi(self, roi, z)
        from ._fallback._args import as_coord_int, parse_roi
        coords, states = self._coords, self._states
        if roi is None:
            return coords.copy(), states.copy()
        x0, y0, x1, y1 = parse_roi(roi, 1 << 62)
        zz = as_coord_int(z, "z")
        sel = ((coords[:, 2] == zz) & (coords[:, 0] >= x0) & (coords[:, 0] < x1) & (coords[:, 1] >= y0)
               & (coords[:, 1] < y1))
        return coords[sel].copy(), states[sel].copy()

    def to_dense(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 over roi (x0, y0, x1, y1) in plane z, background filled in;
        roi None = the window [0, grid_size)^2."""
        return super().to_dense(_roi_or_window(roi, self.grid_size), z=z)  # type: ignore[misc]

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, z: int = 0,
                              channel: int = 0, **kwargs: Any) -> np.ndarray:
        """(h, w) float32 map (viz_type: density|phase|energy|real|imag|gradient|...) of to_dense(roi, z)."""
        return super().compute_visualization(viz_type, roi, z=z, channel=channel, **kwargs)  # type: ignore[misc]

    def analyze(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> Dict[str, Any]:
        """Analysis of the matter (inside roi in plane z when given); see atheria_core.analysis.
        Cost grows with the matter (and the region), not the window."""
        if _is_c(self):
            return _core()._analyze(self, roi, z)
        coords, states = self.matter_in_roi(roi, z)
        return _analysis.analyze_cells(coords[:, :2], states)

    def snapshot(self) -> Snapshot:
        """The engine's complete state (matter, step, options, model); docs/snapshots.md."""
        meta = self._base_meta()
        coords, states = self.matter()  # type: ignore[attr-defined]
        arrays = {"coords": coords, "states": states, **self._pending_arrays}
        return Snapshot(meta, arrays)

    def restore(self, snap: Snapshot, _source: str = "<memory>") -> None:
        """Puts the engine in the snapshot's state (matter and step count; the model stays)."""
        self._check_snapshot(snap, _source)
        coords, states = snap.arrays.get("coords"), snap.arrays.get("states")
        if coords is None or states is None:
            raise SnapshotError(f"snapshot {_source}: matter arrays missing", kind="corrupt", path=_source)
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
        states = np.asarray(states, dtype=np.complex64).reshape(len(coords), self.d_state)
        step = snap.step
        if step < 0:
            raise SnapshotError(f"snapshot {_source}: negative step count {step}", kind="corrupt", path=_source)
        before = self.matter()  # type: ignore[attr-defined]
        before_step = self.get_step_count()  # type: ignore[attr-defined]
        self.clear()  # type: ignore[attr-defined]
        try:
            if len(coords):
                self.add_particles(coords, states)  # type: ignore[attr-defined]
            self._set_step(step)
        except BaseException:
            self.clear()  # type: ignore[attr-defined]
            if len(before[0]):
                self.add_particles(*before)  # type: ignore[attr-defined]
            self._set_step(before_step)
            raise


class DenseEngineAPI(_SnapshotMixin):
    """Snapshots, ROI views and analysis of the ``DenseEngine``."""

    _ENGINE = "DenseEngine"
    _OPTIONS = DENSE_OPTIONS

    def _set_step(self, step: int) -> None:
        if _is_c(self):
            _core()._set_step_count(self, int(step))
        else:
            self._step = int(step)

    def to_dense(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 copy of the field over roi (x0, y0, x1, y1); z must be 0."""
        x0, y0, x1, y1 = _dense_roi(roi, z, self.grid_size)
        return np.ascontiguousarray(self.get_state()[y0:y1, x0:x1])  # type: ignore[attr-defined]

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, z: int = 0,
                              channel: int = 0, **kwargs: Any) -> np.ndarray:
        """(h, w) float32 map of the field over roi; z must be 0."""
        if roi is not None or z != 0:
            roi = _dense_roi(roi, z, self.grid_size)
        return super().compute_visualization(viz_type, roi, channel=channel, **kwargs)  # type: ignore[misc]

    def analyze(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> Dict[str, Any]:
        """Analysis of every cell of the grid (inside roi); see atheria_core.analysis."""
        x0, y0, x1, y1 = _dense_roi(roi, z, self.grid_size)
        if _is_c(self):
            return _core()._analyze(self, (x0, y0, x1, y1), 0)
        return _analysis.analyze_field(self._psi[y0:y1, x0:x1], x0, y0)

    def snapshot(self) -> Snapshot:
        """The engine's complete state (field, step, options, model memory, model)."""
        meta = self._base_meta()
        arrays = {"field": self.get_state(), **self._pending_arrays}  # type: ignore[attr-defined]
        return Snapshot(meta, arrays)

    def restore(self, snap: Snapshot, _source: str = "<memory>") -> None:
        """Puts the engine in the snapshot's state (field, step count, model memory)."""
        self._check_snapshot(snap, _source)
        field = snap.arrays.get("field")
        g, d = self.grid_size, self.d_state
        if field is None or field.shape != (g, g, d):
            raise SnapshotError(f"snapshot {_source}: field missing or not ({g}, {g}, {d})", kind="corrupt",
                                path=_source)
        if snap.step < 0:
            raise SnapshotError(f"snapshot {_source}: negative step count {snap.step}", kind="corrupt",
                                path=_source)
        if not np.all(np.isfinite(field)):
            raise SnapshotError(f"snapshot {_source}: the field holds non-finite values", kind="corrupt",
                                path=_source)
        self.clear()  # type: ignore[attr-defined]   # vacuum, step 0, model memory reset
        self.set_state(np.asarray(field, dtype=np.complex64))  # type: ignore[attr-defined]
        self._set_step(snap.step)
        _set_memory(self, snap.meta.get("memory"), snap.arrays, _source)


_TYPES: Dict[int, Tuple[type, type]] = {}


def engine_types(backend: Any) -> Tuple[type, type]:
    """(Engine, DenseEngine) of a backend module (``_core`` or ``_fallback``), with this API."""
    key = id(backend)
    if key not in _TYPES:
        eng = type("Engine", (SparseEngineAPI, backend.Engine), {
            "__doc__": backend.Engine.__doc__, "__module__": "atheria_core"})
        dense = type("DenseEngine", (DenseEngineAPI, backend.DenseEngine), {
            "__doc__": backend.DenseEngine.__doc__, "__module__": "atheria_core"})
        _TYPES[key] = (eng, dense)
    return _TYPES[key]


# ---------------------------------------------------------------- load_snapshot dispatch
def _backend_module():
    import atheria_core as ac
    return ac._impl


def engine_from_snapshot(snap: Snapshot, *, source: str = "<memory>", model: Any = None,
                         device: Optional[str] = None) -> Any:
    """A ready engine of the snapshot's type in its state (see atheria_core.load_snapshot)."""
    kind = snap.engine
    if kind == "AetheriaMotor":
        from .motor import AetheriaMotor
        return AetheriaMotor.from_snapshot(snap, source=source, model=model, device=device)
    if kind == "NativeEngineWrapper":
        from .wrapper import NativeEngineWrapper
        return NativeEngineWrapper.from_snapshot(snap, source=source, device=device)
    if kind not in ("Engine", "DenseEngine"):
        raise SnapshotError(f"snapshot {source}: unknown engine type {kind!r}", kind="corrupt", path=source)
    backend = _backend_module()
    Eng, Dense = engine_types(backend)
    opts = dict(snap.meta.get("options") or {})
    if device is not None:
        opts["device"] = device
    try:
        if kind == "Engine":
            d = opts.pop("d_state")
            eng = Eng(d, **opts)
        else:
            g, d = opts.pop("grid_size"), opts.pop("d_state")
            eng = Dense(g, d, **opts)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise SnapshotError(f"snapshot {source}: cannot rebuild the {kind} from its options ({exc})",
                            kind="corrupt", path=source) from exc
    if model is not None:
        eng.set_model(model)
    else:
        m, path = model_from_description(snap.meta.get("model"), snap.arrays, backend, source)
        if m is not None:
            eng.set_model(m)
        elif path is not None and not eng.load_model(path):
            warnings.warn(f"snapshot {source}: cannot reload model {path}: {eng.get_last_error()}",
                          RuntimeWarning, stacklevel=3)
    if snap.meta.get("memory") is not None and not eng.has_model():
        # no model to take the memory: restore the field and step, and say so
        mem_meta = snap.meta.pop("memory")
        try:
            eng.restore(snap, _source=source)
        finally:
            snap.meta["memory"] = mem_meta
        warnings.warn(f"snapshot {source}: its model memory was not restored (no model)", RuntimeWarning,
                      stacklevel=3)
        return eng
    eng.restore(snap, _source=source)
    return eng

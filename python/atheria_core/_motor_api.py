"""Snapshots, ROI views and analysis for ``AetheriaMotor`` and ``NativeEngineWrapper``.

Mixins, so that motor.py and wrapper.py stay about stepping; the engines' side is
``_engines.py`` and the format ``snapshot.py`` (docs/snapshots.md).
"""
from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from typing import Any, Deque, Dict, Optional, Sequence

import numpy as np

from . import analysis as _analysis
from ._version import __version__
from .snapshot import Snapshot, SnapshotError, file_sha256, read_snapshot_file, write_snapshot_file

logger = logging.getLogger("atheria_core")

__all__ = ["MotorAPI", "WrapperAPI", "ANALYSIS_HISTORY_MAX"]

#: default bound of ``NativeEngineWrapper.analysis_history`` (entries)
ANALYSIS_HISTORY_MAX = 1000

MOTOR_OPTIONS = ("grid_size", "d_state", "gamma_decay", "unitary", "initial_state_mode", "seed", "vacuum_strength")


def _check_z(z: Any) -> None:
    if isinstance(z, bool) or not isinstance(z, (int, np.integer)):
        raise TypeError(f"z must be an int, got {type(z).__name__}")
    if int(z) != 0:
        raise ValueError(f"z: a 2-D grid has the one plane z = 0, got {z}")


def _check_kind(snap: Any, kind: str, source: str) -> None:
    if not isinstance(snap, Snapshot):
        raise TypeError(f"snap must be a Snapshot, got {type(snap).__name__}")
    if snap.engine != kind:
        raise SnapshotError(f"snapshot {source}: it is of a {snap.engine}, not a {kind}", kind="mismatch",
                            path=source)


class MotorAPI:
    """``AetheriaMotor``: to_dense / compute_visualization / analyze with roi, and snapshots."""

    def to_dense(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 copy of the field over roi (x0, y0, x1, y1); z must be 0."""
        _check_z(z)
        return self.get_dense_state(roi)  # type: ignore[attr-defined]

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, z: int = 0,
                              channel: int = 0) -> np.ndarray:
        """(h, w) float32 map of the field over roi (formulas of include/atheria/viz.h)."""
        from .motor import visualization_numpy
        return visualization_numpy(self.to_dense(roi, z), viz_type, channel)

    def analyze(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> Dict[str, Any]:
        """Analysis of every cell of the grid (inside roi); see atheria_core.analysis."""
        from .motor import _check_roi
        _check_z(z)
        x0, y0, x1, y1 = _check_roi(roi, self.grid_size, self.grid_size)  # type: ignore[attr-defined]
        return _analysis.analyze_field(self.get_dense_state((x0, y0, x1, y1)), x0, y0)  # type: ignore[attr-defined]

    def snapshot(self) -> Snapshot:
        """Field, step count, options and ConvLSTM memory (h, c).  The model itself is saved
        only as a reference when ``model_source`` holds a file description."""
        self._check_open()  # type: ignore[attr-defined]
        arrays: Dict[str, np.ndarray] = {"field": self.get_dense_state()}  # type: ignore[attr-defined]
        mem = None
        got = self.get_memory()  # type: ignore[attr-defined]
        if got is not None:
            arrays["memory_h"], arrays["memory_c"] = got
            mem = {"h_shape": list(got[0].shape), "c_shape": list(got[1].shape)}
        src = getattr(self, "model_source", None)
        if isinstance(src, dict):
            model = dict(src)
        elif self.model is None:  # type: ignore[attr-defined]
            model = None
        else:
            model = {"type": "callable", "repr": type(self.model).__name__}  # type: ignore[attr-defined]
        opts = {k: getattr(self, k) for k in MOTOR_OPTIONS}
        opts["device"] = str(self.device)  # type: ignore[attr-defined]
        meta = {"engine": "AetheriaMotor", "atheria_core": __version__, "options": opts,
                "step": int(self.step_count), "model": model, "memory": mem}  # type: ignore[attr-defined]
        return Snapshot(meta, arrays)

    def restore(self, snap: Snapshot, _source: str = "<memory>") -> None:
        """Puts the motor in the snapshot's state (field, step count, memory; the model stays)."""
        import torch
        _check_kind(snap, "AetheriaMotor", _source)
        saved = snap.meta.get("options", {})
        for k in ("grid_size", "d_state"):
            if saved.get(k) != getattr(self, k):
                raise SnapshotError(f"snapshot {_source}: option {k}={saved.get(k)!r} differs from this motor's "
                                    f"{getattr(self, k)!r}", kind="mismatch", path=_source)
        field = snap.arrays.get("field")
        g, d = self.grid_size, self.d_state  # type: ignore[attr-defined]
        if field is None or field.shape != (g, g, d) or not np.all(np.isfinite(field)):
            raise SnapshotError(f"snapshot {_source}: field missing, not ({g}, {g}, {d}) or non-finite",
                                kind="corrupt", path=_source)
        if snap.step < 0:
            raise SnapshotError(f"snapshot {_source}: negative step count", kind="corrupt", path=_source)
        h, c = snap.arrays.get("memory_h"), snap.arrays.get("memory_c")
        if snap.meta.get("memory") is not None and (h is None or c is None):
            raise SnapshotError(f"snapshot {_source}: memory arrays missing", kind="corrupt", path=_source)
        self.set_state(field)  # type: ignore[attr-defined]
        self.step_count = snap.step
        if h is not None and c is not None and self.has_memory:  # type: ignore[attr-defined]
            self.h_state = torch.from_numpy(np.array(h, dtype=np.float32)).to(self.device)  # type: ignore
            self.c_state = torch.from_numpy(np.array(c, dtype=np.float32)).to(self.device)  # type: ignore
        else:
            self.reset_memory()  # type: ignore[attr-defined]

    def save_snapshot(self, path: Any) -> str:
        """Writes ``snapshot()`` to ``path`` atomically; returns the path."""
        return write_snapshot_file(path, self.snapshot())

    @classmethod
    def from_snapshot(cls, snap: Snapshot, *, source: str = "<memory>", model: Any = None,
                      device: Optional[str] = None) -> Any:
        """A motor in the snapshot's state; ``model`` is required unless the snapshot references
        a TorchScript file that still matches (a warning otherwise: δ = 0 until it is set)."""
        opts = dict(snap.meta.get("options") or {})
        if device is not None:
            opts["device"] = device
        desc = snap.meta.get("model")
        if model is None and desc is not None:
            if desc.get("type") == "file" and os.path.isfile(str(desc.get("path"))) \
                    and file_sha256(str(desc["path"])) == desc.get("sha256"):
                from ._model_loader import quiet_jit_deprecation
                import torch
                with quiet_jit_deprecation():
                    model = torch.jit.load(str(desc["path"]), map_location=opts.get("device", "cpu")).eval()
            else:
                warnings.warn(f"snapshot {source}: the motor's model ({desc.get('repr', desc.get('type'))}) is "
                              "not saved; pass model= to load_snapshot or set motor.model (δ = 0 until then)",
                              RuntimeWarning, stacklevel=3)
        try:
            g, d = opts.pop("grid_size"), opts.pop("d_state")
            dev = opts.pop("device", "cpu")
            motor = cls(model, g, d, dev, **opts)
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot {source}: cannot rebuild the AetheriaMotor ({exc})", kind="corrupt",
                                path=source) from exc
        if isinstance(desc, dict) and desc.get("type") == "file":
            motor.model_source = dict(desc)
        motor.restore(snap, _source=source)
        return motor


class WrapperAPI:
    """``NativeEngineWrapper``: ROI manager, analysis time series and snapshots."""

    @property
    def roi_manager(self) -> Any:
        """The :class:`atheria_core.ROIManager` used by get_visualization_data when roi is None."""
        rm = self.__dict__.get("_roi_manager")
        if rm is None:
            from .roi import ROIManager
            rm = self.__dict__["_roi_manager"] = ROIManager(self.grid_size)  # type: ignore[attr-defined]
        return rm

    @property
    def analysis_history(self) -> Deque[Dict[str, Any]]:
        """The analyze() results recorded so far (bounded: the oldest are dropped)."""
        hist = self.__dict__.get("_analysis_history")
        if hist is None:
            hist = self.__dict__["_analysis_history"] = deque(maxlen=ANALYSIS_HISTORY_MAX)
        return hist

    def set_analysis_history_length(self, n: int) -> None:
        """Bounds analysis_history to the last ``n`` entries (n >= 1)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        self.__dict__["_analysis_history"] = deque(self.analysis_history, maxlen=int(n))

    def to_dense(self, roi: Optional[Sequence[int]] = None, z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 over roi; only the region is converted."""
        eng = self._require_engine()  # type: ignore[attr-defined]
        _check_z(z)
        return eng.to_dense(self._roi(roi), z=0)  # type: ignore[attr-defined]

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, z: int = 0,
                              channel: int = 0) -> np.ndarray:
        eng = self._require_engine()  # type: ignore[attr-defined]
        _check_z(z)
        return eng.compute_visualization(viz_type, self._roi(roi), channel=channel)  # type: ignore[attr-defined]

    def analyze(self, roi: Optional[Sequence[int]] = None, z: int = 0, *, record: bool = True) -> Dict[str, Any]:
        """The engine's analyze(roi) plus ``step``; appended to analysis_history when ``record``."""
        eng = self._require_engine()  # type: ignore[attr-defined]
        _check_z(z)
        res = eng.analyze(None if roi is None else self._roi(roi), 0)  # type: ignore[attr-defined]
        res["step"] = int(eng.get_step_count())
        if record:
            self.analysis_history.append(res)
        return res

    def _options(self) -> Dict[str, Any]:
        return {"grid_size": self.grid_size, "d_state": self.d_state, "device": self.device,  # type: ignore
                "engine": self.requested_engine, "gamma_decay": self.gamma_decay,  # type: ignore
                "unitary": self._unitary_arg, "initial_state_mode": self.initial_state_mode,  # type: ignore
                "seed": self.seed, "vacuum_strength": self.vacuum_strength}  # type: ignore

    def snapshot(self) -> Snapshot:
        """The native engine's snapshot plus the wrapper's options and model file (path + sha256)."""
        eng = self._require_engine()  # type: ignore[attr-defined]
        inner = eng.snapshot()
        path = self.model_path  # type: ignore[attr-defined]
        model = {"type": "file", "path": os.path.abspath(path), "sha256": file_sha256(path),
                 "route": self.model_route} if path else None  # type: ignore[attr-defined]
        meta = {"engine": "NativeEngineWrapper", "atheria_core": __version__, "options": self._options(),
                "engine_kind": self.engine_kind, "unitary_resolved": bool(self.unitary),  # type: ignore
                "model": model, "step": inner.step, "inner": inner.meta}
        return Snapshot(meta, inner.arrays)

    def restore(self, snap: Snapshot, _source: str = "<memory>") -> None:
        """Puts the native engine in the snapshot's state (the loaded model stays)."""
        _check_kind(snap, "NativeEngineWrapper", _source)
        eng = self._require_engine()  # type: ignore[attr-defined]
        if snap.meta.get("engine_kind") != self.engine_kind:  # type: ignore[attr-defined]
            raise SnapshotError(f"snapshot {_source}: it holds a {snap.meta.get('engine_kind')} engine, this "
                                f"wrapper runs a {self.engine_kind} one", kind="mismatch", path=_source)  # type: ignore
        inner = snap.meta.get("inner")
        if not isinstance(inner, dict):
            raise SnapshotError(f"snapshot {_source}: no engine state", kind="corrupt", path=_source)
        eng.restore(Snapshot(inner, snap.arrays), _source=_source)
        self._psi_cache = None

    def save_snapshot(self, path: Any) -> str:
        """Writes ``snapshot()`` to ``path`` atomically; returns the path."""
        return write_snapshot_file(path, self.snapshot())

    def _model_for(self, snap: Snapshot, source: str) -> str:
        desc = snap.meta.get("model")
        if not isinstance(desc, dict) or desc.get("type") != "file":
            raise SnapshotError(f"snapshot {source}: no model file recorded", kind="corrupt", path=source)
        path = str(desc.get("path"))
        if not os.path.isfile(path):
            raise SnapshotError(f"snapshot {source}: model file {path} no longer exists", kind="mismatch",
                                path=source)
        if file_sha256(path) != desc.get("sha256"):
            raise SnapshotError(f"snapshot {source}: model file {path} changed since the snapshot (sha256 differs)",
                                kind="mismatch", path=source)
        return path

    def load_snapshot(self, path: Any) -> None:
        """Loads a wrapper snapshot in place: reloads the model file when it is not the one loaded
        (it must still match its sha256), then restores the state.  SnapshotError otherwise."""
        src = os.fspath(path)
        snap = read_snapshot_file(src)
        _check_kind(snap, "NativeEngineWrapper", src)
        model_path = self._model_for(snap, src)
        if self.engine is None or self.model_path is None or \
                os.path.abspath(self.model_path) != model_path:  # type: ignore[attr-defined]
            if not self.load_model(model_path):  # type: ignore[attr-defined]
                raise SnapshotError(f"snapshot {src}: cannot load model {model_path}: {self.last_error}",
                                    kind="mismatch", path=src)  # type: ignore[attr-defined]
        self.restore(snap, _source=src)

    @classmethod
    def from_snapshot(cls, snap: Snapshot, *, source: str = "<memory>", device: Optional[str] = None) -> Any:
        opts = dict(snap.meta.get("options") or {})
        if device is not None:
            opts["device"] = device
        try:
            g, d, dev = opts.pop("grid_size"), opts.pop("d_state"), opts.pop("device", "cpu")
            w = cls(g, d, dev, **opts)
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot {source}: cannot rebuild the NativeEngineWrapper ({exc})",
                                kind="corrupt", path=source) from exc
        model_path = w._model_for(snap, source)
        if not w.load_model(model_path):
            raise SnapshotError(f"snapshot {source}: cannot load model {model_path}: {w.last_error}",
                                kind="mismatch", path=source)
        w.restore(snap, _source=source)
        return w

"""``NativeEngineWrapper``: the native (C) engines behind the ``AetheriaMotor`` interface,
and ``create_motor``, the factory that picks the native engine when it can.

The wrapper keeps the field inside the C engine and converts it to dense
arrays (or torch tensors) only when asked: ``get_dense_state(roi)`` converts
only the region, ``state.psi`` converts once per step on first access.

Engine choice (``engine=``):

* ``"dense"``  — :class:`atheria_core.DenseEngine`: the whole grid through the
  model once per step.  Right for U-Nets (pooling needs the whole grid) and
  memory models, and for local models on fully occupied grids.
* ``"sparse"`` — :class:`atheria_core.Engine` with zero background, the
  bounded window ``[0, grid_size)²`` (zero outside) and threshold 0: only matter
  and its neighbourhood are evaluated.  Exact (DESIGN §3.4) for local,
  zero-preserving models, with ``patch = 2·receptive_radius + 1``.
* ``"auto"``   — sparse when the model is local and zero-preserving (known
  from the TorchScript metadata) and the initial field occupies at most
  ``SPARSE_OCCUPANCY_MAX`` of the grid; dense otherwise.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["NativeEngineWrapper", "create_motor", "ENGINE_KINDS", "SPARSE_OCCUPANCY_MAX"]

ENGINE_KINDS = ("auto", "dense", "sparse")
#: auto picks the sparse engine only when at most this fraction of cells holds matter
SPARSE_OCCUPANCY_MAX = 0.25


def _cfg_get(cfg: Any, key: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    getter = getattr(cfg, "get", None)
    if callable(getter):
        return getter(key, default)
    return getattr(cfg, key, default)


class _LazyState:
    """``wrapper.state.psi``: a torch complex64 tensor (1, H, W, d), converted on first access per step."""

    def __init__(self, owner: "NativeEngineWrapper") -> None:
        self._owner = owner

    @property
    def psi(self):
        return self._owner._psi_tensor()

    @psi.setter
    def psi(self, value: Any) -> None:
        self._owner.set_state(value)

    @property
    def grid_size(self) -> int:
        return self._owner.grid_size

    @property
    def d_state(self) -> int:
        return self._owner.d_state


from ._motor_api import WrapperAPI  # noqa: E402  (snapshots, ROI manager, analysis)


class NativeEngineWrapper(WrapperAPI):
    """The native engines with the interface of :class:`atheria_core.motor.AetheriaMotor`.

    Args:
        grid_size: H = W = grid_size cells.
        d_state: complex channels per cell.
        device: 'cpu' or 'cuda[:N]' — where the TorchScript model runs.
        cfg: optional experiment config (dict / Experiment) read for ``GAMMA_DECAY`` and
            ``INITIAL_STATE_MODE_INFERENCE`` when the keywords are not given.
        engine: 'auto' | 'dense' | 'sparse' (module docstring).
        gamma_decay: Lindblad decay γ >= 0.
        unitary: apply δ·ψ; None reads the model metadata (``unitary``).
        initial_state_mode: 'complex_noise' | 'zeros' | 'random', as AetheriaMotor.
        seed: vacuum seed (0 <= seed < 2**64).
        vacuum_strength: vacuum phase-noise standard deviation (radians).

    The field lives in the C engine; nothing is converted until asked for.
    """

    def __init__(self, grid_size: int, d_state: int, device: str = "cpu", cfg: Any = None, *,
                 engine: str = "auto", gamma_decay: Optional[float] = None, unitary: Optional[bool] = None,
                 initial_state_mode: Optional[str] = None, seed: int = 0,
                 vacuum_strength: float = 0.1) -> None:
        import atheria_core as ac

        if engine not in ENGINE_KINDS:
            raise ValueError(f"engine must be one of {ENGINE_KINDS}, got {engine!r}")
        for name, v in (("grid_size", grid_size), ("d_state", d_state)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self._ac = ac
        self.grid_size = int(grid_size)
        self.d_state = int(d_state)
        self.device = str(device)
        self.cfg = cfg
        self.requested_engine = engine
        self.gamma_decay = float(_cfg_get(cfg, "GAMMA_DECAY", 0.0) if gamma_decay is None else gamma_decay)
        self.initial_state_mode = str(_cfg_get(cfg, "INITIAL_STATE_MODE_INFERENCE", "complex_noise")
                                      if initial_state_mode is None else initial_state_mode)
        self._unitary_arg = unitary
        self.seed = int(seed)
        self.vacuum_strength = float(vacuum_strength)
        # Validates mode / seed / strength with the reference engine's rules.
        from .motor import initial_field
        self._initial = initial_field(self.initial_state_mode, self.grid_size, self.d_state,
                                      seed=self.seed, strength=self.vacuum_strength)
        self.engine_kind: Optional[str] = None
        self.engine: Any = None
        self.model_path: Optional[str] = None
        #: how the model runs: 'builtin-conv' (C conv stack), 'shim' (LibTorch), 'python'
        #: (TorchScript through Python), 'python-backend' (pure-Python atheria_core)
        self.model_route: Optional[str] = None
        #: _model_loader.LoadReport of the last successful load (route, file, skipped faster routes)
        self.model_report: Any = None
        self.model_metadata: Optional[Dict[str, Any]] = None
        self.unitary = bool(unitary) if unitary is not None else False
        self.last_error = ""
        self.state = _LazyState(self)
        self._psi_cache: Any = None
        self._psi_cache_step = -1
        self._closed = False

    # ------------------------------------------------------------------ model / engine
    def _choose_engine(self, meta: Optional[Mapping[str, Any]]) -> Tuple[str, str]:
        """(kind, reason) for the requested engine and the model's metadata."""
        if self.requested_engine != "auto":
            return self.requested_engine, "requested"
        if not meta:
            return "dense", "no atheria metadata: receptive field unknown"
        if meta.get("has_memory"):
            return "dense", "memory model"
        radius = meta.get("receptive_radius")
        if radius is None:
            return "dense", "global receptive field (U-Net)"
        if not meta.get("zero_preserving"):
            return "dense", "model does not map zero to zero"
        occupancy = float(np.count_nonzero(np.any(self._initial != 0, axis=2))) / float(self.grid_size ** 2)
        if occupancy > SPARSE_OCCUPANCY_MAX:
            return "dense", f"initial field occupies {occupancy:.0%} of the grid"
        return "sparse", f"local zero-preserving model (radius {radius}), occupancy {occupancy:.1%}"

    def _build_engine(self, kind: str, meta: Optional[Mapping[str, Any]]) -> Any:
        native = self._ac._native   # our API, also when ATHERIA_API=original swaps the top level
        unitary = self.unitary
        if kind == "dense":
            eng = native("DenseEngine")(self.grid_size, self.d_state, self.device, gamma_decay=self.gamma_decay,
                                        unitary=unitary, seed=self.seed, vacuum_strength=self.vacuum_strength)
            if self.initial_state_mode != "complex_noise":
                eng.set_state(self._initial)
            return eng
        radius = (meta or {}).get("receptive_radius")
        radius = 1 if radius is None else int(radius)
        eng = native("Engine")(self.d_state, self.device, self.grid_size, background="zero", extent="zero",
                               threshold=0.0, gamma_decay=self.gamma_decay, unitary=unitary, seed=self.seed,
                               vacuum_strength=self.vacuum_strength, patch=2 * radius + 1)
        self._load_sparse_field(eng, self._initial)
        return eng

    @staticmethod
    def _load_sparse_field(eng: Any, field: np.ndarray) -> None:
        occupied = np.any(field != 0, axis=2)
        ys, xs = np.nonzero(occupied)
        coords = np.stack([xs, ys, np.zeros_like(xs)], axis=1).astype(np.int64)
        eng.add_particles(coords, field[ys, xs])

    def load_model(self, model_path: str) -> bool:
        """Loads a TorchScript file into a fresh native engine (kind per ``engine=``).

        Returns False (and keeps the previous engine/model) on failure; the reason
        is in :attr:`last_error`.
        """
        self._check_open()
        from ._model_loader import ModelLoadError, read_metadata

        path = os.fspath(model_path)
        try:
            meta = read_metadata(path)
        except ModelLoadError as exc:
            self.last_error = str(exc)
            logger.error("error loading model in native engine: %s", exc)
            return False
        kind, reason = self._choose_engine(meta)
        previous_unitary = self.unitary
        if self._unitary_arg is None:
            self.unitary = bool((meta or {}).get("unitary", False))
        try:
            eng = self._build_engine(kind, meta)
        except (ValueError, TypeError, OverflowError, MemoryError) as exc:
            self.unitary = previous_unitary
            self.last_error = f"cannot create the {kind} engine: {exc}"
            logger.error("error loading model in native engine: %s", self.last_error)
            return False
        try:
            from ._model_loader import select_model
            model, report = select_model(eng, path)
            eng.set_model(model)
            route = report.route
            self.model_report = report
        except (ModelLoadError, ValueError, TypeError, RuntimeError, OSError) as exc:
            self.unitary = previous_unitary
            self.last_error = str(exc)
            logger.error("error loading model in native engine: %s", self.last_error)
            return False
        self.engine, self.engine_kind, self.model_route = eng, kind, route
        self.model_path, self.model_metadata = path, meta
        self.last_error = ""
        self._psi_cache = None
        logger.info("native %s engine (%s backend) for %s: %s", kind, self._ac.BACKEND, path, reason)
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("NativeEngineWrapper was cleaned up; create a new one")

    def _require_engine(self) -> Any:
        self._check_open()
        if self.engine is None:
            raise RuntimeError("no model loaded: call load_model(path) first")
        return self.engine

    # ------------------------------------------------------------------ stepping
    def evolve_internal_state(self, step: Optional[int] = None) -> None:
        """One step in the native engine (``step`` is accepted for compatibility and ignored)."""
        eng = self._require_engine()
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
            raise TypeError(f"step must be an int or None, got {type(step).__name__}")
        eng.step()

    def evolve_step(self, n: int = 1) -> None:
        """``n`` native steps in one call (no Python between steps)."""
        eng = self._require_engine()
        eng.step(int(n))

    def get_step_count(self) -> int:
        return int(self._require_engine().get_step_count())

    @property
    def step_count(self) -> int:
        return self.get_step_count()

    # ------------------------------------------------------------------ read-outs
    def _roi(self, roi: Optional[Sequence[int]]) -> Tuple[int, int, int, int]:
        from .motor import _check_roi
        return _check_roi(roi, self.grid_size, self.grid_size)

    def get_dense_state(self, roi: Optional[Sequence[int]] = None) -> np.ndarray:
        """(H, W, d) complex64 copy of the field, or (y1-y0, x1-x0, d) for roi (x0, y0, x1, y1).

        Only the requested region is converted."""
        eng = self._require_engine()
        x0, y0, x1, y1 = self._roi(roi)
        if self.engine_kind == "dense":
            full = eng.get_state()
            return np.ascontiguousarray(full[y0:y1, x0:x1])
        return eng.to_dense((x0, y0, x1, y1))

    def _psi_tensor(self):
        import torch

        eng = self._require_engine()
        step = eng.get_step_count()
        if self._psi_cache is None or self._psi_cache_step != step:
            self._psi_cache = torch.from_numpy(self.get_dense_state()).unsqueeze(0)
            self._psi_cache_step = step
        return self._psi_cache

    def set_state(self, psi: Any) -> None:
        """Replaces the field: (H, W, d) or (1, H, W, d), finite."""
        eng = self._require_engine()
        arr = psi.detach().cpu().numpy() if hasattr(psi, "detach") else np.asarray(psi)
        g, d = self.grid_size, self.d_state
        if arr.shape == (1, g, g, d):
            arr = arr[0]
        if arr.shape != (g, g, d):
            raise ValueError(f"psi must have shape ({g}, {g}, {d}) or (1, {g}, {g}, {d}), got {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.complex64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("psi contains non-finite values")
        if self.engine_kind == "dense":
            eng.set_state(arr)
        else:
            # The sparse engine has no bulk removal: the field is replaced by
            # clearing it (which resets the step count; it is put back).
            step = eng.get_step_count()
            eng.clear()
            self._load_sparse_field(eng, arr)
            eng._set_step(step)
        self._psi_cache = None

    def get_visualization_data(self, viz_type: str = "density", roi: Optional[Sequence[int]] = None,
                               channel: int = 0) -> Dict[str, Any]:
        """The payload of ``AetheriaMotor.get_visualization_data``, computed in C
        (``"engine": "native"`` where the motor says ``"python"``).

        ``roi`` None uses the wrapper's :attr:`roi_manager` (the whole grid unless set)."""
        eng = self._require_engine()
        r = self._roi(roi if roi is not None else self.roi_manager.roi)
        data = eng.compute_visualization(viz_type, r, channel=channel)
        return {"type": viz_type, "data": data, "min": float(data.min()), "max": float(data.max()),
                "step": int(eng.get_step_count()), "shape": tuple(data.shape), "roi": r,
                "channel": int(channel), "engine": "native"}

    def apply_tool(self, action: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """collapse / vortex / wave (docs/tools.md), all-or-nothing."""
        eng = self._require_engine()
        if self.engine_kind == "dense":
            eng.apply_tool(action, params)
        else:
            from .motor import apply_tool_numpy
            field = self.get_dense_state()
            new = apply_tool_numpy(field, action, params)
            # The tools never turn a zero cell into a non-zero one, so updating
            # the occupied cells replaces the whole field.
            occupied = np.any(field != 0, axis=2)
            ys, xs = np.nonzero(occupied)
            coords = np.stack([xs, ys, np.zeros_like(xs)], axis=1).astype(np.int64)
            eng.add_particles(coords, new[ys, xs])
        self._psi_cache = None

    def regenerate_initial_state(self) -> None:
        """Back to the initial field, step 0, memory reset."""
        eng = self._require_engine()
        eng.clear()
        if self.engine_kind == "dense":
            if self.initial_state_mode != "complex_noise":
                eng.set_state(self._initial)
        else:
            self._load_sparse_field(eng, self._initial)
        self._psi_cache = None

    def get_matter_count(self) -> int:
        eng = self._require_engine()
        if self.engine_kind == "dense":
            return self.grid_size * self.grid_size
        return int(eng.get_matter_count())

    def cleanup(self) -> None:
        """Releases the native engine and the model; the wrapper is unusable afterwards."""
        self.engine = None
        self._psi_cache = None
        self._closed = True


def create_motor(experiment: Any, *, root: str = "output", device: str = "cpu", engine: str = "auto",
                 use_native: Optional[bool] = None, checkpoint: Optional[str] = None,
                 grid_size: Optional[int] = None, seed: int = 0) -> Any:
    """The engine for an experiment: ``NativeEngineWrapper`` when possible, else ``AetheriaMotor``.

    Args:
        experiment: experiment name or :class:`atheria_core.experiments.Experiment`.
        root: experiments root (``<root>/experiments/<NAME>/config.json``).
        device: 'cpu' or 'cuda[:N]'.
        engine: native engine kind ('auto' | 'dense' | 'sparse').
        use_native: overrides the config's ``USE_NATIVE_ENGINE`` (default True).
        checkpoint: checkpoint path (default: the latest).
        grid_size: default the config's ``GRID_SIZE_INFERENCE``.
        seed: vacuum seed.

    The choice and its reason are logged: "Native engine (C) loaded", or the reason
    for the fallback ("atheria_core not available: …", "JIT model not found: …",
    "error loading model in native engine: …").  The returned object has
    ``is_native`` set.
    """
    from . import experiments as _exp
    from .motor import AetheriaMotor

    exp = experiment if isinstance(experiment, _exp.Experiment) else _exp.load_experiment_config(experiment, root)
    g = int(grid_size or exp.grid_size_inference)
    native = exp.use_native_engine if use_native is None else bool(use_native)

    def python_motor(reason: Optional[str]) -> AetheriaMotor:
        if reason:
            logger.warning("%s; using the Python engine (AetheriaMotor)", reason)
        model = _exp.load_model_from_checkpoint(exp, checkpoint, device=device)
        motor = AetheriaMotor(model, g, exp.d_state, device, exp, seed=seed)
        motor.is_native = False  # type: ignore[attr-defined]
        motor.fallback_reason = reason  # type: ignore[attr-defined]
        return motor

    if not native:
        return python_motor("USE_NATIVE_ENGINE is False")
    import atheria_core as ac
    if ac.BACKEND != "c":
        return python_motor(f"atheria_core not available: {ac.BACKEND_REASON}")
    from .export import export_model_to_jit
    try:
        jit_path = export_model_to_jit(checkpoint if checkpoint else exp, experiment=exp if checkpoint else None,
                                       root=exp.root, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any export failure means "no JIT model"
        return python_motor(f"JIT model not found: {exc}")
    try:
        wrapper = NativeEngineWrapper(g, exp.d_state, device, exp, engine=engine, seed=seed)
    except Exception as exc:  # noqa: BLE001
        return python_motor(f"error loading model in native engine: {exc}")
    if not wrapper.load_model(jit_path):
        return python_motor(f"error loading model in native engine: {wrapper.last_error}")
    wrapper.is_native = True  # type: ignore[attr-defined]
    wrapper.fallback_reason = None  # type: ignore[attr-defined]
    logger.info("Native engine (C) loaded: %s engine, model %s", wrapper.engine_kind, jit_path)
    return wrapper

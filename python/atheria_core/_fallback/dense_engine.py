"""The ``DenseEngine``: a bounded grid in one array, the model evaluated on the whole grid.

Like the reference AetheriaMotor: the field is (H, W, d) complex64 [y, x]
(H = W = grid_size), starts as the vacuum at step 0, and each step calls the
model once on the float32 (1, 2d, H, W) field.  Extent 'periodic' pads the field
circularly by the model's receptive radius, runs the model and crops (the
same as circular padding at every layer of a conv stack), as the C engine does.
Memory models (``has_memory``) get ``commit_memory()`` after a successful step,
``discard_memory()`` after a failed one and ``reset_memory()`` on clear/set_model.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ._args import (MAX_D_STATE, MAX_GRID_SIZE, MAX_REGION_CELLS, as_bool, as_choice, as_device, as_float,
                    as_int, as_seed, check_finite, parse_roi, to_complex64)
from ._guard import guard_methods
from .engine import ModelSlot
from .models import ModelSpec, describe_model, model_output
from .rule import apply_rule
from .vacuum import vacuum_region
from . import tools as _tools
from . import viz as _viz

logger = logging.getLogger("atheria_core._fallback")

#: Bound on the (padded) model input, in floats (ATH_DENSE_MAX_INPUT_FLOATS).
MAX_INPUT_FLOATS = 1 << 30


@guard_methods(("set_model", "load_model", "step", "get_state", "set_state", "get_step_count", "clear",
                "apply_tool", "compute_visualization"))
class DenseEngine(ModelSlot):
    """Dense bounded universe of grid_size × grid_size cells, d_state channels each."""

    _GUARD_NAME = "DenseEngine"

    def __init__(self, grid_size: int, d_state: int, device: str = "cpu", *,
                 gamma_decay: float = 0.0, unitary: bool = False, seed: int = 0,
                 vacuum_strength: float = 0.1, extent: str = "zero") -> None:
        self._grid = as_int(grid_size, "grid_size", 1, MAX_GRID_SIZE)
        self._d = as_int(d_state, "d_state", 1, MAX_D_STATE)
        if self._grid * self._grid * self._d > MAX_REGION_CELLS:
            raise ValueError(f"grid_size: a {self._grid}x{self._grid}x{self._d} field exceeds "
                             f"{MAX_REGION_CELLS} values")
        self._device = as_device(device)
        self._gamma = as_float(gamma_decay, "gamma_decay", lo=0.0)
        self._unitary = as_bool(unitary, "unitary")
        self._seed = as_seed(seed)
        self._strength = as_float(vacuum_strength, "vacuum_strength", lo=0.0)
        self._extent = as_choice(extent, "extent", ("zero", "periodic"))
        self._model: Optional[ModelSpec] = None
        self._last_error = ""
        self._step = 0
        self._psi = self._vacuum()

    def _vacuum(self) -> np.ndarray:
        g = self._grid
        return vacuum_region(self._seed, self._strength, self._d, 0, 0, g, g, 0, 0)

    # ----------------------------------------------------------- attributes
    grid_size = property(lambda self: self._grid)
    d_state = property(lambda self: self._d)
    device = property(lambda self: self._device)
    gamma_decay = property(lambda self: self._gamma)
    unitary = property(lambda self: self._unitary)
    seed = property(lambda self: self._seed)
    vacuum_strength = property(lambda self: self._strength)
    extent = property(lambda self: self._extent)

    def __repr__(self) -> str:
        return (f"DenseEngine(grid_size={self._grid}, d_state={self._d}, extent={self._extent!r}, "
                f"step={self._step})")

    # ---------------------------------------------------------------- model
    def _check_model(self, spec: ModelSpec) -> None:
        if spec.channels >= 0 and spec.channels != 2 * self._d:
            raise ValueError(f"model expects {spec.channels} channels but the engine has "
                             f"2*d_state = {2 * self._d}")
        if self._extent == "periodic":
            rr = spec.receptive_radius
            if rr < 0:
                raise ValueError("extent 'periodic' needs a model with a known receptive radius "
                                 "(it pads the field circularly by it); this model's is unknown")
            if rr > MAX_GRID_SIZE:
                raise ValueError(f"model receptive radius {rr} is too large")
            hp = self._grid + 2 * rr
            if hp * hp * 2 * self._d > MAX_INPUT_FLOATS:
                raise ValueError(f"periodic padding by the receptive radius {rr} makes the model input too large")

    def set_model(self, model: Any) -> None:
        """Built-in model or a callable taking the float32 (1, 2d, H, W) field and returning
        (1, 2d, H, W).  None removes the model.  Resets the new model's memory."""
        if model is None:
            self._model = None
            return
        spec = describe_model(model)
        self._check_model(spec)
        spec.reset()
        self._model = spec

    # ----------------------------------------------------------------- step
    def _forward(self, spec: ModelSpec, x: np.ndarray) -> np.ndarray:
        """Float32 (1, 2d, H', W') model input -> float32 (1, 2d, H', W') δ."""
        if spec.kind == "zero":
            return np.zeros_like(x)
        if spec.kind == "conv":
            return spec.obj.forward(x)
        return model_output(spec.obj(x), x.shape, allow_center=False)

    def _step_once(self) -> None:
        spec = self._model
        if spec is None:
            raise RuntimeError("no model set (set_model / load_model)")
        self._check_model(spec)
        g, d = self._grid, self._d
        rr = spec.receptive_radius if self._extent == "periodic" else 0
        x = np.concatenate([self._psi.real, self._psi.imag], axis=2).transpose(2, 0, 1)[None]
        if rr > 0:   # circular padding by the receptive radius; the centre of the output is used
            x = np.pad(x, ((0, 0), (0, 0), (rr, rr), (rr, rr)), mode="wrap")
        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            out = self._forward(spec, x)
        except Exception:
            spec.discard()
            raise
        out = out[0, :, rr: rr + g, rr: rr + g]
        if not np.all(np.isfinite(out)):
            spec.discard()
            name = "python-callable" if spec.kind == "callable" else spec.kind
            raise ValueError(f"model '{name}' returned non-finite values (NaN or Inf); step not applied")
        delta = out.transpose(1, 2, 0).reshape(g * g, 2 * d)
        new, _ = apply_rule(self._psi.reshape(g * g, d), delta, unitary=self._unitary, gamma_decay=self._gamma)
        self._psi = new.reshape(g, g, d)
        self._step += 1
        spec.commit()

    def step(self, n: int = 1) -> None:
        """n steps (all succeed or the engine is left after the last good step)."""
        k = as_int(n, "n")
        if k < 0:
            raise ValueError(f"step: n must be >= 0, got {k}")
        for _ in range(k):
            try:
                self._step_once()
            except Exception as exc:
                self._last_error = str(exc) or type(exc).__name__
                raise

    def get_step_count(self) -> int:
        return self._step

    # ---------------------------------------------------------------- field
    def get_state(self) -> np.ndarray:
        """(H, W, d) complex64 copy."""
        return self._psi.copy()

    def set_state(self, psi: Any) -> None:
        """Replaces the field: (H, W, d) or (1, H, W, d), finite."""
        arr = to_complex64(psi, "psi")
        g, d = self._grid, self._d
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.shape != (g, g, d):
            raise ValueError(f"psi: expected shape ({g}, {g}, {d}) or (1, {g}, {g}, {d}), got {np.shape(psi)}")
        check_finite(arr, "psi")
        self._psi = np.ascontiguousarray(arr)

    def clear(self) -> None:
        """Back to the vacuum at step 0, step count 0, model memory reset."""
        self._psi = self._vacuum()
        self._step = 0
        if self._model is not None:
            self._model.reset()

    def apply_tool(self, action: str, params: Optional[Dict[str, Any]] = None) -> None:
        """In-place, all-or-nothing field edit (docs/tools.md): collapse | vortex | wave."""
        p = _tools.parse_params(action, params, self._grid)
        self._psi = _tools.apply(self._psi, action, p)

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, *,
                              channel: int = 0) -> np.ndarray:
        """(h, w) float32 map of the field over roi (default: the whole grid)."""
        vt = _viz.parse_viz_type(viz_type)
        ch = as_int(channel, "channel", 0, self._d - 1)
        g = self._grid
        if roi is None:
            x0, y0, x1, y1 = 0, 0, g, g
        else:
            x0, y0, x1, y1 = parse_roi(roi)
            if x0 < 0 or y0 < 0 or x1 > g or y1 > g:
                raise ValueError(f"roi: must lie inside the grid [0, {g})^2, got ({x0}, {y0}, {x1}, {y1})")
        return _viz.compute(self._psi[y0:y1, x0:x1], vt, ch)

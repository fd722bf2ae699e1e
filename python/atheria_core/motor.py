"""Reference dense engine ``AetheriaMotor`` (alias ``Aetheria_Motor``), in PyTorch.

This is the yardstick every native result is checked against: it implements
DESIGN §3.2 (HarmonicVacuum initial state) and §3.3 (one step) literally, on
the whole bounded grid with the model's own zero padding.

State layout (as in the original Atheria): ``motor.state.psi`` is a torch
complex64 tensor of shape ``(1, H, W, d_state)`` indexed ``[0, y, x, k]``
(row = y, H = W = grid_size).  The model sees ``(1, 2·d_state, H, W)`` float32,
channels ``[Re ψ_0..Re ψ_{d-1}, Im ψ_0..Im ψ_{d-1}]``.

One step (§3.3); the model runs in float32, the update rule in float64 with one
rounding to float32 at the end, exactly like the C engines' ``ath_step_rule``::

    x = cat(Re ψ, Im ψ)  -> (1, 2d, H, W)
    δ = model(x)                  (memory models: δ, h, c = model(x, h, c))
    δ ← δ·ψ                       (unitary models, complex product)
    δ ← δ − γ·ψ                   (Lindblad decay, γ = gamma_decay)
    ψ' = ψ + δ;  ψ' ← ψ' / (‖ψ'‖₂ over channels + 1e-9)

Differences from the original: read-outs (``get_dense_state``,
``get_visualization_data``) return NumPy arrays, not torch tensors.
"""
from __future__ import annotations

import gc
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ._fallback import tools as _fb_tools
from ._fallback import vacuum as _fb_vacuum
from ._fallback import viz as _fb_viz

logger = logging.getLogger(__name__)

__all__ = [
    "AetheriaMotor", "Aetheria_Motor", "QuantumState", "harmonic_vacuum", "splitmix64",
    "INITIAL_STATE_MODES", "initial_field", "VIZ_TYPES", "TOOL_ACTIONS", "apply_tool_numpy", "visualization_numpy",
    "engine_rule", "psi_to_model_input", "model_input_to_psi",
]

_U64 = np.uint64
_MASK = (1 << 64) - 1
#: initial states understood by AetheriaMotor
INITIAL_STATE_MODES = ("complex_noise", "zeros", "random")
VIZ_TYPES = _fb_viz.VIZ_TYPES
TOOL_ACTIONS = ("collapse", "vortex", "wave")
_NORM_EPS = 1e-9


# --------------------------------------------------------------------------- vacuum (DESIGN §3.2)
def splitmix64(z: np.ndarray) -> np.ndarray:
    """DESIGN §3.2 ``mix`` on a uint64 array (wrapping arithmetic), returns a new uint64 array."""
    return _fb_vacuum.mix64(np.asarray(z, dtype=_U64))


def harmonic_vacuum(d_state: int, roi: Sequence[int], step: int = 0, *, seed: int = 0,
                    strength: float = 0.1, z: int = 0) -> np.ndarray:
    """HarmonicVacuum over a region, vectorised (DESIGN §3.2).

    Args:
        d_state: channels per cell.
        roi: (x0, y0, x1, y1), half-open, cell coordinates.
        step: simulation step (the dense engine's initial state uses 0).
        seed: 0 <= seed < 2**64.
        strength: standard deviation of the phase noise n (radians).
        z: plane.

    Returns:
        complex64 array (y1-y0, x1-x0, d_state) indexed [y - y0, x - x0, channel].
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= _MASK:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    x0, y0, x1, y1 = (int(v) for v in roi)
    return _fb_vacuum.vacuum_region(int(seed), float(strength), int(d_state), x0, y0, x1, y1, int(z), int(step))


# --------------------------------------------------------------------------- visualisation (viz.h)
def visualization_numpy(field: np.ndarray, viz_type: str, channel: int = 0) -> np.ndarray:
    """Scalar map of a (h, w, d) complex field, formulas of include/atheria/viz.h.

    density = Σ_k |ψ_k|²; phase = atan2(Im ψ_c, Re ψ_c); energy = Σ_k |∂xψ_k|² + |∂yψ_k|²;
    real/imag = Re/Im ψ_c; gradient = |∇ density|.  Derivatives as numpy.gradient (unit
    spacing, one-sided at the region's edges).  Returns (h, w) float32, except the original
    module's views: holographic (h, w, 3) = (min(1, 5·density), (arg ψ_c + π)/2π,
    clamp((Re ψ_c + 1)/2, 0, 1)) and holographic_bulk (5, h, w) = density and 4 repeated
    3×3 blurs ([[1,2,1],[2,4,2],[1,2,1]]/16, zero padding).  The NumPy
    implementation is shared with the pure-Python backend (atheria_core._fallback.viz).
    """
    name = _fb_viz.parse_viz_type(viz_type)
    f = np.asarray(field)
    if f.ndim != 3:
        raise ValueError(f"field must be (h, w, d), got shape {f.shape}")
    d = f.shape[2]
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < d:
        raise ValueError(f"channel must be an int in [0, {d}), got {channel!r}")
    return _fb_viz.compute(f.astype(np.complex64, copy=False), name, int(channel))


# --------------------------------------------------------------------------- tools (docs/tools.md)
def apply_tool_numpy(field: np.ndarray, action: str, params: Optional[Mapping[str, Any]] = None) -> np.ndarray:
    """Returns a new (H, W, d) complex64 field with the tool applied (docs/tools.md, float64 maths).

    Raises ValueError/TypeError for bad input; ``field`` is never modified.  The NumPy
    implementation is shared with the pure-Python backend (atheria_core._fallback.tools).
    """
    f = np.asarray(field)
    if f.ndim != 3 or f.shape[0] != f.shape[1]:
        raise ValueError(f"field must be a square (H, W, d) grid, got shape {f.shape}")
    p = _fb_tools.parse_params(action, None if params is None else dict(params), f.shape[1])
    return _fb_tools.apply(f.astype(np.complex64, copy=False), action, p)


# --------------------------------------------------------------------------- the rule (DESIGN §3.3)
def engine_rule(x: torch.Tensor, delta: torch.Tensor, *, unitary: bool = False,
                gamma_decay: float = 0.0) -> torch.Tensor:
    """One application of the engine's update rule in the model layout (differentiable).

    Args:
        x: float32 (B, 2d, H, W), channels [Re ψ..., Im ψ...].
        delta: the model's output, same shape.
        unitary: δ ← δ·ψ (complex element-wise) first.
        gamma_decay: δ ← δ − γ·ψ.

    Returns:
        (B, 2d, H, W) in x's dtype: ψ' = (ψ + δ) / (‖ψ + δ‖₂ over the d channels + 1e-9),
        computed in float64.

    Training through this function optimises exactly what the engines will run.
    """
    if x.shape != delta.shape or x.dim() != 4 or x.shape[1] % 2:
        raise ValueError(f"x and delta must be equal (B, 2d, H, W) shapes, got {tuple(x.shape)} "
                         f"and {tuple(delta.shape)}")
    d = x.shape[1] // 2
    out_dtype = x.dtype
    # float64 like the C engines (ath_step_rule): one rounding to float32 at the end, so
    # the reference and native trajectories do not drift apart by rule rounding alone.
    x, delta = x.double(), delta.double()
    p_re, p_im = x[:, :d], x[:, d:]
    d_re, d_im = delta[:, :d], delta[:, d:]
    if unitary:
        d_re, d_im = d_re * p_re - d_im * p_im, d_re * p_im + d_im * p_re
    if gamma_decay != 0.0:
        g = torch.tensor(float(gamma_decay), dtype=x.dtype, device=x.device)
        d_re = d_re - g * p_re
        d_im = d_im - g * p_im
    n_re = p_re + d_re
    n_im = p_im + d_im
    denom = torch.sqrt(torch.sum(n_re * n_re + n_im * n_im, dim=1, keepdim=True)) + _NORM_EPS
    return torch.cat([n_re / denom, n_im / denom], dim=1).to(out_dtype)


def psi_to_model_input(psi: torch.Tensor) -> torch.Tensor:
    """complex (B, H, W, d) -> float32 (B, 2d, H, W) [Re..., Im...]."""
    return torch.cat([psi.real.float(), psi.imag.float()], dim=-1).permute(0, 3, 1, 2).contiguous()


def model_input_to_psi(x: torch.Tensor) -> torch.Tensor:
    """float32 (B, 2d, H, W) -> complex64 (B, H, W, d)."""
    d = x.shape[1] // 2
    t = x.permute(0, 2, 3, 1)
    return torch.complex(t[..., :d].contiguous(), t[..., d:].contiguous())


# --------------------------------------------------------------------------- state + engine
def initial_field(mode: str, grid_size: int, d_state: int, *, seed: int = 0,
                  strength: float = 0.1) -> np.ndarray:
    """The initial field of an engine, shared by AetheriaMotor and the native wrapper.

    Args:
        mode: 'complex_noise' (the vacuum at step 0 over the grid, DESIGN §3.2),
            'zeros', or 'random' (per-cell normalised complex Gaussian from ``seed``).
        grid_size: H = W cells.
        d_state: channels per cell.
        seed: 0 <= seed < 2**64.
        strength: vacuum phase-noise standard deviation (radians).

    Returns:
        complex64 (H, W, d_state), C-contiguous, indexed [y, x, k].
    """
    if mode not in INITIAL_STATE_MODES:
        raise ValueError(f"initial_state_mode must be one of {list(INITIAL_STATE_MODES)}, got {mode!r}")
    g, d = int(grid_size), int(d_state)
    if mode == "complex_noise":
        arr = harmonic_vacuum(d, (0, 0, g, g), 0, seed=seed, strength=strength)
    elif mode == "zeros":
        arr = np.zeros((g, g, d), dtype=np.complex64)
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        c = rng.standard_normal((g, g, d)) + 1j * rng.standard_normal((g, g, d))
        c /= np.linalg.norm(c, axis=2, keepdims=True) + _NORM_EPS
        arr = c.astype(np.complex64)
    return np.ascontiguousarray(arr)


@dataclass
class QuantumState:
    """The field of the reference engine: ``psi`` complex64 (1, H, W, d_state), [0, y, x, k]."""

    psi: torch.Tensor
    grid_size: int
    d_state: int
    device: torch.device


def _cfg_get(cfg: Any, key: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _check_roi(roi: Optional[Sequence[int]], h: int, w: int) -> Tuple[int, int, int, int]:
    if roi is None:
        return 0, 0, w, h
    try:
        vals = [v for v in roi]
    except TypeError:
        raise TypeError(f"roi must be a sequence (x0, y0, x1, y1), got {type(roi).__name__}") from None
    if len(vals) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in vals):
        raise ValueError(f"roi must be 4 ints (x0, y0, x1, y1), got {roi!r}")
    x0, y0, x1, y1 = (int(v) for v in vals)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"roi {tuple(vals)} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h}")
    return x0, y0, x1, y1


from ._motor_api import MotorAPI  # noqa: E402  (snapshots, roi views, analysis)


class AetheriaMotor(MotorAPI):
    """Reference dense engine (see the module docstring for the state layout and rule).

    Args:
        model: the rule, an ``nn.Module``/TorchScript module/callable mapping float32
            (1, 2d, H, W) to δ of the same shape (memory models: ``(x, h, c) -> (δ, h, c)``
            with ``init_memory(x)``), or None for δ = 0.  nn.Modules are moved to
            ``device`` and put in eval mode.
        grid_size: H = W = grid_size cells.
        d_state: complex channels per cell.
        device: torch device for the state and the model.
        cfg: optional config (dict or object) read for ``GAMMA_DECAY`` and
            ``INITIAL_STATE_MODE_INFERENCE`` when the keywords are not given.
        gamma_decay: Lindblad decay γ >= 0 (default: cfg, else 0).
        unitary: apply δ·ψ; None reads ``model.unitary`` (False if absent).
        initial_state_mode: 'complex_noise' (the vacuum at step 0, DESIGN §3.2),
            'zeros', or 'random' (per-cell normalised complex Gaussian from ``seed``).
        seed: vacuum / random seed, 0 <= seed < 2**64.
        vacuum_strength: vacuum phase-noise standard deviation (radians).
    """

    def __init__(self, model: Any, grid_size: int, d_state: int, device: Any = "cpu", cfg: Any = None, *,
                 gamma_decay: Optional[float] = None, unitary: Optional[bool] = None,
                 initial_state_mode: Optional[str] = None, seed: int = 0,
                 vacuum_strength: float = 0.1) -> None:
        for name, v in (("grid_size", grid_size), ("d_state", d_state)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.grid_size = int(grid_size)
        self.d_state = int(d_state)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"invalid device {device!r}: {exc}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        self.cfg = cfg
        gamma = _cfg_get(cfg, "GAMMA_DECAY", 0.0) if gamma_decay is None else gamma_decay
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(gamma)) or float(gamma) < 0:
            raise ValueError(f"gamma_decay must be a finite float >= 0, got {gamma!r}")
        self.gamma_decay = float(gamma)
        mode = _cfg_get(cfg, "INITIAL_STATE_MODE_INFERENCE", "complex_noise") \
            if initial_state_mode is None else initial_state_mode
        if mode not in INITIAL_STATE_MODES:
            raise ValueError(f"initial_state_mode must be one of {list(INITIAL_STATE_MODES)}, got {mode!r}")
        self.initial_state_mode = str(mode)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= _MASK:
            raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
        self.seed = int(seed)
        if not math.isfinite(float(vacuum_strength)) or float(vacuum_strength) < 0:
            raise ValueError(f"vacuum_strength must be finite and >= 0, got {vacuum_strength!r}")
        self.vacuum_strength = float(vacuum_strength)

        if model is not None and not callable(model):
            raise TypeError(f"model must be callable (nn.Module / TorchScript) or None, got {type(model).__name__}")
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        self.model = model
        self.has_memory = bool(model is not None and (getattr(model, "has_memory", False)
                                                      or hasattr(model, "init_memory")))
        if self.has_memory and not hasattr(model, "init_memory"):
            raise TypeError("memory model (has_memory=True) must provide init_memory(x) -> (h, c)")
        self.unitary = bool(getattr(model, "unitary", False)) if unitary is None else bool(unitary)
        self._closed = False
        self.h_state: Optional[torch.Tensor] = None
        self.c_state: Optional[torch.Tensor] = None
        self.step_count = 0
        self.state = QuantumState(self._initial_psi(), self.grid_size, self.d_state, self.device)
        logger.debug("AetheriaMotor grid=%d d=%d device=%s gamma=%g unitary=%s memory=%s mode=%s",
                     self.grid_size, self.d_state, self.device, self.gamma_decay, self.unitary,
                     self.has_memory, self.initial_state_mode)

    # original attribute name of the rule
    @property
    def operator(self) -> Any:
        return self.model

    # ------------------------------------------------------------------ state
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("AetheriaMotor was cleaned up; create a new one")

    def _initial_psi(self) -> torch.Tensor:
        arr = initial_field(self.initial_state_mode, self.grid_size, self.d_state, seed=self.seed,
                            strength=self.vacuum_strength)
        return torch.from_numpy(arr).to(self.device).unsqueeze(0)

    @torch.no_grad()
    def regenerate_initial_state(self) -> None:
        """Back to the initial state (same mode and seed), step count 0, memory reset."""
        self._check_open()
        self.state.psi = self._initial_psi()
        self.step_count = 0
        self.reset_memory()

    def reset_memory(self) -> None:
        """Drops the ConvLSTM memory; the next step starts from ``model.init_memory(x)``."""
        self.h_state = None
        self.c_state = None

    @torch.no_grad()
    def set_state(self, psi: Any) -> None:
        """Replaces the field: (H, W, d) or (1, H, W, d) array-like / tensor, finite. Memory is kept."""
        self._check_open()
        t = psi.detach().cpu().numpy() if isinstance(psi, torch.Tensor) else np.asarray(psi)
        g, d = self.grid_size, self.d_state
        if t.shape == (1, g, g, d):
            t = t[0]
        if t.shape != (g, g, d):
            raise ValueError(f"psi must have shape ({g}, {g}, {d}) or (1, {g}, {g}, {d}), got {t.shape}")
        if not np.issubdtype(t.dtype, np.number):
            raise TypeError(f"psi must be numeric, got dtype {t.dtype}")
        t = t.astype(np.complex64)
        if not np.all(np.isfinite(t)):
            raise ValueError("psi contains non-finite values")
        self.state.psi = torch.from_numpy(np.ascontiguousarray(t)).to(self.device).unsqueeze(0)

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def evolve_internal_state(self, step: Optional[int] = None) -> None:
        """Advances the field by one step (DESIGN §3.3).

        ``step`` is accepted for compatibility with the original signature and is only
        validated; the engine counts steps itself (``step_count``).  On any error
        (model failure, wrong output shape, non-finite δ) nothing changes.
        """
        self._check_open()
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
            raise TypeError(f"step must be an int or None, got {type(step).__name__}")
        x = psi_to_model_input(self.state.psi)                # (1, 2d, H, W) float32
        h_new = c_new = None
        if self.model is None:
            delta = torch.zeros_like(x)
        elif self.has_memory:
            h, c = (self.h_state, self.c_state)
            if h is None or c is None:
                h, c = self.model.init_memory(x)
            delta, h_new, c_new = self.model(x, h, c)
        else:
            delta = self.model(x)
        if not isinstance(delta, torch.Tensor) or tuple(delta.shape) != tuple(x.shape):
            shape = tuple(delta.shape) if isinstance(delta, torch.Tensor) else type(delta).__name__
            raise ValueError(f"model returned {shape}; expected a tensor of shape {tuple(x.shape)}")
        delta = delta.to(device=self.device, dtype=torch.float32)
        if not bool(torch.isfinite(delta).all()):
            raise FloatingPointError("model returned non-finite values; the step was not applied")
        x_new = engine_rule(x, delta, unitary=self.unitary, gamma_decay=self.gamma_decay)
        self.state.psi = model_input_to_psi(x_new)
        if self.has_memory:
            self.h_state, self.c_state = h_new, c_new
        self.step_count += 1

    def evolve_step(self, n: int = 1) -> None:
        """``n`` steps of :meth:`evolve_internal_state`."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        for _ in range(int(n)):
            self.evolve_internal_state()

    def get_step_count(self) -> int:
        return self.step_count

    # ------------------------------------------------------------------ read-outs
    def get_dense_state(self, roi: Optional[Sequence[int]] = None) -> np.ndarray:
        """Copy of the field: (H, W, d) complex64, or (y1-y0, x1-x0, d) for roi (x0, y0, x1, y1)."""
        self._check_open()
        x0, y0, x1, y1 = _check_roi(roi, self.grid_size, self.grid_size)
        return self.state.psi[0, y0:y1, x0:x1].detach().cpu().numpy().astype(np.complex64, copy=True)

    def get_memory(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(h, c) as float32 NumPy copies, or None (no memory model / not yet initialised)."""
        if self.h_state is None or self.c_state is None:
            return None
        return (self.h_state.detach().cpu().numpy().copy(), self.c_state.detach().cpu().numpy().copy())

    def get_visualization_data(self, viz_type: str = "density", roi: Optional[Sequence[int]] = None,
                               channel: int = 0) -> Dict[str, Any]:
        """Scalar map of the field (or its roi) with the formulas of include/atheria/viz.h.

        Returns ``{"type", "data": float32 (h, w), or (h, w, 3) / (5, h, w) for holographic /
        holographic_bulk, "min", "max", "step", "shape": data.shape,
        "roi": (x0, y0, x1, y1), "channel", "engine": "python"}``.
        """
        r = _check_roi(roi, self.grid_size, self.grid_size)
        data = visualization_numpy(self.get_dense_state(r), viz_type, channel)
        return {"type": viz_type, "data": data, "min": float(data.min()), "max": float(data.max()),
                "step": self.step_count, "shape": tuple(data.shape), "roi": r, "channel": int(channel),
                "engine": "python"}

    # ------------------------------------------------------------------ tools
    @torch.no_grad()
    def apply_tool(self, action: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Edits the field in place with ``collapse`` / ``vortex`` / ``wave`` (docs/tools.md).
        All-or-nothing: bad input raises ValueError/TypeError and changes nothing."""
        self._check_open()
        new = apply_tool_numpy(self.get_dense_state(), action, params)
        self.state.psi = torch.from_numpy(new).to(self.device).unsqueeze(0)

    # ------------------------------------------------------------------ lifecycle
    def cleanup(self) -> None:
        """Releases the field, memory and the model reference (and cached CUDA memory).
        The motor is unusable afterwards (methods raise RuntimeError)."""
        self.reset_memory()
        self.model = None
        self.has_memory = False
        self.state.psi = None  # type: ignore[assignment]
        self._closed = True
        gc.collect()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()


#: original Atheria name
Aetheria_Motor = AetheriaMotor

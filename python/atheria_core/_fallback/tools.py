"""Field tools of ``DenseEngine.apply_tool`` (docs/tools.md), computed in float64.

The field is (H, W, d) complex64 [y, x]; tools act on the cells with
(x_c - x)^2 + (y_c - y)^2 <= radius^2 and return a new complex64 field.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

TOOLS = ("collapse", "vortex", "wave")
_KEYS = ("x", "y", "radius", "strength", "angle")


def parse_params(action: Any, params: Optional[Dict[str, Any]], grid_size: int) -> Dict[str, float]:
    """Validated tool parameters with the defaults of docs/tools.md filled in."""
    if not isinstance(action, str):
        raise TypeError(f"action: expected a str, one of {list(TOOLS)}, got {type(action).__name__}")
    if action not in TOOLS:
        raise ValueError(f"apply_tool: unknown action {action!r} (expected 'collapse', 'vortex' or 'wave')")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params: expected a dict, got {type(params).__name__}")
    params = dict(params)   # a private copy, as in C: a value's __float__ may change the caller's dict
    w = float(grid_size)
    vals: Dict[str, float] = {"x": w / 2.0, "y": w / 2.0, "radius": max(1.0, w / 8.0),
                              "strength": 1.0, "angle": 0.0}
    for key in params:
        if not isinstance(key, str) or key not in _KEYS:
            raise ValueError(f"apply_tool: unknown parameter {key!r} (expected x, y, radius, strength, angle)")
    for key in _KEYS:
        if key not in params:
            continue
        value = params[key]
        if isinstance(value, (bool, np.bool_, str, bytes, complex, np.complexfloating)) or value is None:
            raise TypeError(f"apply_tool: params[{key!r}] must be a number, got {type(value).__name__}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"apply_tool: params[{key!r}] must be a real number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"apply_tool: params[{key!r}] must be finite, got {value!r}")
        vals[key] = v
    if vals["radius"] <= 0:
        raise ValueError(f"apply_tool: radius must be > 0, got {vals['radius']}")
    if action == "collapse" and not 0.0 <= vals["strength"] <= 1.0:
        raise ValueError(f"apply_tool: collapse strength must be in [0, 1], got {vals['strength']}")
    return vals


def apply(field: np.ndarray, action: str, p: Dict[str, float]) -> np.ndarray:
    """New (H, W, d) complex64 field with the tool applied (input unchanged).

    Float64 arithmetic in the order of ``ath_dense_apply_tool``; ValueError (nothing changes)
    if a new value is not finite.
    """
    hgt, wid = field.shape[0], field.shape[1]
    dx = np.arange(wid, dtype=np.float64)[None, :] - p["x"]
    dy = np.arange(hgt, dtype=np.float64)[:, None] - p["y"]
    mask = dx * dx + dy * dy <= p["radius"] * p["radius"]
    out = field.copy()
    if not np.any(mask):
        return out
    sel = field[mask]                                   # (M, d) complex64
    re = sel.real.astype(np.float64)
    im = sel.imag.astype(np.float64)
    if action == "collapse":
        s = p["strength"]
        a2 = re * re + im * im
        kb = np.argmax(np.sqrt(a2), axis=1)             # first maximum, as the C loop
        f = np.full(re.shape, 1.0 - s)
        f[np.arange(len(f)), kb] = 1.0
        n0 = np.sqrt(np.sum(a2, axis=1))
        fr, fi = f * re, f * im
        n1 = np.sqrt(np.sum(fr * fr + fi * fi, axis=1))
        scale = np.where(n1 > 0.0, n0 / np.where(n1 > 0.0, n1, 1.0), 1.0)[:, None]
        new_re, new_im = fr * scale, fi * scale
    else:
        dxm = np.broadcast_to(dx, mask.shape)[mask]
        dym = np.broadcast_to(dy, mask.shape)[mask]
        if action == "vortex":
            phase = p["strength"] * np.arctan2(dym, dxm)
        else:  # wave
            phase = p["strength"] * (dxm * math.cos(p["angle"]) + dym * math.sin(p["angle"]))
        c = np.cos(phase)[:, None]
        sn = np.sin(phase)[:, None]
        new_re, new_im = re * c - im * sn, re * sn + im * c
    new = np.empty(sel.shape, dtype=np.complex64)
    with np.errstate(over="ignore", invalid="ignore"):
        new.real = new_re
        new.imag = new_im
    if not np.all(np.isfinite(new)):
        raise ValueError("apply_tool: the parameters produce non-finite values; nothing changed")
    out[mask] = new
    return out

"""Scalar visualisation maps of a dense field (include/atheria/viz.h), float32 out.

field: (h, w, d) complex64 indexed [y, x] -> (h, w) float32.
  density   sum_k |psi_k|^2
  phase     arg(psi_channel) = atan2(im, re)
  energy    sum_k |d/dx psi_k|^2 + |d/dy psi_k|^2 (numpy.gradient differences, unit spacing;
            a 1-wide axis contributes 0)
  real      Re psi_channel
  imag      Im psi_channel
  gradient  |grad density| with the same differences
"""
from __future__ import annotations

from typing import Any

import numpy as np

VIZ_TYPES = ("density", "phase", "energy", "real", "imag", "gradient")


def parse_viz_type(viz_type: Any) -> str:
    """Validated visualisation name (ASCII case-insensitive, like the C parser)."""
    if not isinstance(viz_type, str):
        raise TypeError(f"viz_type: expected a str, one of {list(VIZ_TYPES)}, got {type(viz_type).__name__}")
    name = viz_type.lower() if viz_type.isascii() else viz_type
    if name not in VIZ_TYPES:
        raise ValueError(f"viz_type: unknown visualisation {viz_type[:64]!r} (expected density, phase, energy, "
                         "real, imag or gradient)")
    return name


def _grad(a: np.ndarray, axis: int) -> np.ndarray:
    """numpy.gradient (edge_order=1, unit spacing) of a float32 array along ``axis``, in float32;
    zeros when the axis has fewer than 2 points."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    return np.gradient(a, axis=axis)


def compute(field: np.ndarray, viz_type: str, channel: int) -> np.ndarray:
    """(h, w, d) complex64 -> (h, w) float32 map.

    Differences are taken in float32 (as NumPy does on complex64), squares summed in float64.
    """
    h, w = field.shape[0], field.shape[1]
    if h == 0 or w == 0:
        return np.zeros((h, w), dtype=np.float32)
    re = np.ascontiguousarray(field.real, dtype=np.float32)
    im = np.ascontiguousarray(field.imag, dtype=np.float32)
    if viz_type == "density":
        out = _density(re, im)
    elif viz_type == "phase":
        out = np.arctan2(im[:, :, channel].astype(np.float64), re[:, :, channel].astype(np.float64))
    elif viz_type == "real":
        out = re[:, :, channel]
    elif viz_type == "imag":
        out = im[:, :, channel]
    elif viz_type == "energy":
        out = np.zeros((h, w), dtype=np.float64)
        for part in (re, im):
            for axis in (1, 0):
                g = _grad(part, axis).astype(np.float64)
                out += np.sum(g * g, axis=2)
    elif viz_type == "gradient":
        dens = _density(re, im).astype(np.float32)
        gx = _grad(dens, 1).astype(np.float64)
        gy = _grad(dens, 0).astype(np.float64)
        out = np.sqrt(gx * gx + gy * gy)
    else:  # pragma: no cover - parse_viz_type guards this
        raise ValueError(f"viz_type: unknown {viz_type!r}")
    return np.ascontiguousarray(out, dtype=np.float32)


def _density(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    r = re.astype(np.float64)
    i = im.astype(np.float64)
    return np.sum(r * r + i * i, axis=2)

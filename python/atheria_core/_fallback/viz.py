"""Scalar visualisation maps of a dense field (include/atheria/viz.h), float32 out.

field: (h, w, d) complex64 indexed [y, x] -> (h, w) float32.
  density   sum_k |psi_k|^2
  phase     arg(psi_channel) = atan2(im, re)
  energy    sum_k |d/dx psi_k|^2 + |d/dy psi_k|^2 (numpy.gradient differences, unit spacing;
            a 1-wide axis contributes 0)
  real      Re psi_channel
  imag      Im psi_channel
  gradient  |grad density| with the same differences

The original module's holographic views (multi-valued):
  holographic       (h, w, 3): R = min(1, 5 sum_k |psi_k|^2), G = (arg psi_channel + pi) / 2pi,
                    B = clamp((Re psi_channel + 1) / 2, 0, 1)
  holographic_bulk  (5, h, w): density, then 4 repeated :func:`blur3x3` of it (:func:`bulk_stack`)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._args import host_array

VIZ_TYPES = ("density", "phase", "energy", "real", "imag", "gradient", "holographic", "holographic_bulk")

#: Layers of the holographic_bulk map (the original module's fixed bulk depth; viz.h ATH_VIZ_BULK_DEPTH).
BULK_DEPTH = 5


def parse_viz_type(viz_type: Any) -> str:
    """Validated visualisation name (ASCII case-insensitive, like the C parser)."""
    if not isinstance(viz_type, str):
        raise TypeError(f"viz_type: expected a str, one of {list(VIZ_TYPES)}, got {type(viz_type).__name__}")
    name = viz_type.lower() if viz_type.isascii() else viz_type
    if name not in VIZ_TYPES:
        raise ValueError(f"viz_type: unknown visualisation {viz_type[:64]!r} (expected density, phase, energy, "
                         "real, imag, gradient, holographic or holographic_bulk)")
    return name


def _grad(a: np.ndarray, axis: int) -> np.ndarray:
    """numpy.gradient (edge_order=1, unit spacing) of a float32 array along ``axis``, in float32;
    zeros when the axis has fewer than 2 points."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    return np.gradient(a, axis=axis)


def viz_shape(viz_type: str, h: int, w: int) -> tuple:
    """Output shape of :func:`compute` for an (h, w) field (viz.h ath_viz_shape)."""
    if viz_type == "holographic":
        return (h, w, 3)
    if viz_type == "holographic_bulk":
        return (BULK_DEPTH, h, w)
    return (h, w)


def blur3x3(planes: np.ndarray) -> np.ndarray:
    """(..., h, w) float32 -> the same shape: conv2d with [[1,2,1],[2,4,2],[1,2,1]]/16, zero padding 1,
    on each (h, w) plane.  Same order of sums as viz.c (vertical, then horizontal, float64), rounded once."""
    p = np.asarray(planes, dtype=np.float32).astype(np.float64)
    if p.shape[-1] == 0 or p.shape[-2] == 0:
        return np.zeros(p.shape, dtype=np.float32)
    pad = np.zeros(p.shape[:-2] + (p.shape[-2] + 2, p.shape[-1] + 2), dtype=np.float64)
    pad[..., 1:-1, 1:-1] = p
    v = 2.0 * pad[..., 1:-1, :] + pad[..., :-2, :] + pad[..., 2:, :]
    out = (v[..., :-2] + 2.0 * v[..., 1:-1] + v[..., 2:]) * 0.0625
    return out.astype(np.float32)


def bulk_stack(base: np.ndarray, depth: int) -> np.ndarray:
    """(C, h, w) float32 -> (depth, C, h, w): layer 0 = base, layer l = blur3x3(layer l-1) (viz.h ath_bulk_stack)."""
    b = np.asarray(base, dtype=np.float32)
    out = np.empty((depth,) + b.shape, dtype=np.float32)
    out[0] = b
    for layer in range(1, depth):
        out[layer] = blur3x3(out[layer - 1])
    return out


def compute(field: np.ndarray, viz_type: str, channel: int) -> np.ndarray:
    """(h, w, d) complex64 -> float32 map of shape :func:`viz_shape` ((h, w) for the scalar maps).

    Differences are taken in float32 (as NumPy does on complex64), squares summed in float64.
    """
    h, w = field.shape[0], field.shape[1]
    if h == 0 or w == 0:
        return np.zeros(viz_shape(viz_type, h, w), dtype=np.float32)
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
    elif viz_type == "holographic":
        dens = _density(re, im)
        r = re[:, :, channel].astype(np.float64)
        i = im[:, :, channel].astype(np.float64)
        out = np.stack([np.minimum(1.0, 5.0 * dens),
                        (np.arctan2(i, r) + np.pi) / (2.0 * np.pi),
                        np.clip((r + 1.0) * 0.5, 0.0, 1.0)], axis=2)
    elif viz_type == "holographic_bulk":
        out = bulk_stack(_density(re, im).astype(np.float32)[None], BULK_DEPTH)[:, 0]
    else:  # pragma: no cover - parse_viz_type guards this
        raise ValueError(f"viz_type: unknown {viz_type!r}")
    return np.ascontiguousarray(out, dtype=np.float32)


def _density(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    r = re.astype(np.float64)
    i = im.astype(np.float64)
    return np.sum(r * r + i * i, axis=2)


def generate_bulk_state(base_field: Any, depth: Any, max_values: int) -> np.ndarray:
    """DenseEngine.generate_bulk_state: a real (H, W), (C, H, W) or (1, C, H, W) field ->
    (1, depth * C, H, W) float32, layer l (channels l*C .. l*C+C-1) = blur3x3 applied l times
    (the original's grouped conv, one group per channel, layers concatenated on the channel axis).

    Raises TypeError for a non-real or non-numeric field, ValueError for a bad shape or depth
    (an int >= 1) or an output of more than ``max_values`` floats.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth: expected an int >= 1, got {type(depth).__name__}")
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth: must be >= 1, got {depth}")
    if base_field is None or isinstance(base_field, (str, bytes)):
        raise TypeError(f"base_field: expected a real array-like, got {type(base_field).__name__}")
    try:
        raw = np.asarray(host_array(base_field))
    except Exception:  # noqa: BLE001 - ragged lists and the like
        raise TypeError("base_field: expected a real array-like") from None
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"base_field: expected a real (float) array, got dtype {raw.dtype}")
    if raw.ndim == 2:
        raw = raw[None]
    elif raw.ndim == 4 and raw.shape[0] == 1:
        raw = raw[0]
    elif raw.ndim != 3:
        raise ValueError(f"base_field: expected shape (H, W), (C, H, W) or (1, C, H, W), got {raw.shape}")
    c, h, w = raw.shape
    if depth * c * h * w > max_values:
        raise ValueError(f"depth: {depth} layers of {c}x{h}x{w} exceed {max_values} values")
    layers = bulk_stack(np.ascontiguousarray(raw, dtype=np.float32), depth)
    return layers.reshape(1, depth * c, h, w)

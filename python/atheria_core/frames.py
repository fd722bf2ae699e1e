"""PNG frames of the visualisations (Pillow; colormaps from matplotlib).  Optional extra ``viz``.

Rendering is table-driven: :data:`VIZ_STYLES` maps a visualisation type to a
:class:`VizStyle` saying how its data looks:

* ``scalar`` — an (h, w) map through a matplotlib colormap (``viridis`` for densities and
  energies, the cyclic ``twilight`` for phase on its fixed range (-π, π], the diverging
  ``RdBu_r`` symmetric about 0 for real / imaginary parts);
* ``rgb`` — an (h, w, 3) image already in colour (values in [0, 1], or any range, rescaled);
* ``stack`` — a (depth, h, w) stack of scalar maps, rendered as tiles left to right.

A new visualisation type plugs in with :func:`register_viz_style` (e.g. ``holographic`` as
``rgb`` and ``holographic_bulk`` as ``stack``, which are registered here already).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

__all__ = ["VizStyle", "VIZ_STYLES", "register_viz_style", "colormap_lut", "frame_to_rgb", "frame_to_image",
           "save_frame"]


@dataclass(frozen=True)
class VizStyle:
    """How a visualisation type is drawn.

    kind: 'scalar' | 'rgb' | 'stack'.
    cmap: matplotlib colormap name (scalar and stack).
    value_range: fixed (vmin, vmax), or None for the data's own range.
    symmetric: range (-m, m) with m = max |data| (diverging maps).
    """

    kind: str = "scalar"
    cmap: str = "viridis"
    value_range: Optional[Tuple[float, float]] = None
    symmetric: bool = False


VIZ_STYLES: Dict[str, VizStyle] = {
    "density": VizStyle(cmap="viridis"),
    "energy": VizStyle(cmap="viridis"),
    "gradient": VizStyle(cmap="viridis"),
    "phase": VizStyle(cmap="twilight", value_range=(-math.pi, math.pi)),
    "real": VizStyle(cmap="RdBu_r", symmetric=True),
    "imag": VizStyle(cmap="RdBu_r", symmetric=True),
    "holographic": VizStyle(kind="rgb"),
    "holographic_bulk": VizStyle(kind="stack", cmap="viridis"),
}


def register_viz_style(viz_type: str, style: VizStyle) -> None:
    """Adds or replaces the style of a visualisation type."""
    if style.kind not in ("scalar", "rgb", "stack"):
        raise ValueError(f"style.kind must be 'scalar', 'rgb' or 'stack', got {style.kind!r}")
    VIZ_STYLES[str(viz_type)] = style


_LUTS: Dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a matplotlib colormap."""
    if name not in _LUTS:
        import matplotlib
        try:
            cmap = matplotlib.colormaps[name]
        except KeyError:
            raise ValueError(f"unknown matplotlib colormap {name!r}") from None
        _LUTS[name] = np.round(cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)
    return _LUTS[name]


def _scalar_rgb(data: np.ndarray, style: VizStyle, vmin: Optional[float], vmax: Optional[float]) -> np.ndarray:
    d = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(d)
    if vmin is None or vmax is None:
        if style.value_range is not None:
            lo, hi = style.value_range
        elif style.symmetric:
            m = float(np.max(np.abs(d[finite]))) if finite.any() else 1.0
            lo, hi = -m, m
        else:
            lo = float(d[finite].min()) if finite.any() else 0.0
            hi = float(d[finite].max()) if finite.any() else 1.0
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    span = vmax - vmin if vmax > vmin else 1.0
    idx = np.clip((d - vmin) / span * 255.0 + 0.5, 0, 255)
    idx = np.where(finite, idx, 0).astype(np.uint8)
    return colormap_lut(style.cmap)[idx]


def frame_to_rgb(data: Union[np.ndarray, Mapping[str, Any]], viz_type: Optional[str] = None, *,
                 vmin: Optional[float] = None, vmax: Optional[float] = None) -> np.ndarray:
    """(H, W, 3) uint8 image of a visualisation.

    ``data`` is the array of ``compute_visualization`` or a ``get_visualization_data`` payload
    (then ``viz_type`` defaults to its ``type``).  ``vmin`` / ``vmax`` fix the colour range
    (e.g. the same range for every frame of a run).
    """
    if isinstance(data, Mapping):
        viz_type = viz_type or str(data.get("type"))
        data = data["data"]
    if viz_type not in VIZ_STYLES:
        raise ValueError(f"viz_type: no style for {viz_type!r}; known: {sorted(VIZ_STYLES)} "
                         "(register_viz_style adds one)")
    style = VIZ_STYLES[viz_type]
    arr = np.asarray(data)
    if style.kind == "scalar":
        if arr.ndim != 2:
            raise ValueError(f"{viz_type} frames are (h, w) maps, got shape {arr.shape}")
        return _scalar_rgb(arr, style, vmin, vmax)
    if style.kind == "rgb":
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"{viz_type} frames are (h, w, 3) images, got shape {arr.shape}")
        a = np.nan_to_num(arr.astype(np.float64))
        if a.min() < 0.0 or a.max() > 1.0:
            lo, hi = a.min(), a.max()
            a = (a - lo) / (hi - lo if hi > lo else 1.0)
        return np.round(a * 255.0).astype(np.uint8)
    if arr.ndim != 3:
        raise ValueError(f"{viz_type} frames are (depth, h, w) stacks, got shape {arr.shape}")
    finite = arr[np.isfinite(arr)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    tiles = [_scalar_rgb(layer, style, lo, hi) for layer in arr]
    gap = np.full((arr.shape[1], 1, 3), 255, dtype=np.uint8)
    out = []
    for i, t in enumerate(tiles):
        if i:
            out.append(gap)
        out.append(t)
    return np.concatenate(out, axis=1)


def frame_to_image(data: Union[np.ndarray, Mapping[str, Any]], viz_type: Optional[str] = None, *,
                   scale: int = 1, vmin: Optional[float] = None, vmax: Optional[float] = None):
    """A Pillow RGB image of a visualisation, each cell ``scale`` × ``scale`` pixels."""
    from PIL import Image
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an int >= 1, got {scale!r}")
    img = Image.fromarray(frame_to_rgb(data, viz_type, vmin=vmin, vmax=vmax), mode="RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_frame(path: Any, data: Union[np.ndarray, Mapping[str, Any]], viz_type: Optional[str] = None, *,
               scale: int = 1, vmin: Optional[float] = None, vmax: Optional[float] = None) -> str:
    """Writes a visualisation as a PNG file; returns the path."""
    path = os.fspath(path)
    frame_to_image(data, viz_type, scale=scale, vmin=vmin, vmax=vmax).save(path, format="PNG", optimize=True)
    return path

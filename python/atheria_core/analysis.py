"""Per-step analysis numbers of a field, in NumPy (the reference and the fallback's implementation).

The C backend computes the same numbers in ``src/core/analysis.c`` (definitions in
``include/atheria/analysis.h`` and ``docs/snapshots.md#analysis``).  For analysed cells
``c`` with states ``psi_c`` (complex64, ``d`` channels):

* ``energy``: Σ_c Σ_k |ψ_ck|² (float64 sums);
* ``matter_count``: number of analysed cells;
* ``bbox``: ``(x0, y0, x1, y1)`` half-open bounds of the cells, ``None`` when there are none;
* ``mean_phase`` = arg m and ``phase_coherence`` = |m|, m = mean of ψ_c0/|ψ_c0| over the cells
  with ψ_c0 ≠ 0 (both 0.0 when there is none);
* ``channel_energy``: (d,) float64, Σ_c |ψ_ck|² per channel;
* ``energy_histogram``: ``{"edges": (BINS+1,) float64, "counts": (BINS,) int64}``, the per-cell
  energy binned like ``numpy.histogram(e, BINS, range=(0, max e))`` (range (0, 1) when max e = 0).

The analysed cells are the sparse Engine's matter (in the roi when one is given) or every
cell of a dense grid (in the roi).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

__all__ = ["BINS", "analyze_cells", "analyze_field"]

#: Number of bins of ``energy_histogram`` (ATH_ANALYSIS_BINS).
BINS = 32


def analyze_cells(xy: Optional[np.ndarray], states: np.ndarray,
                  bbox: Optional[tuple] = None) -> Dict[str, Any]:
    """Analysis of cells at integer positions ``xy`` (N, 2) [x, y] with states (N, d) complex64.

    ``bbox`` overrides the bounds (dense grids pass their region); otherwise they come from ``xy``.
    """
    states = np.asarray(states, dtype=np.complex64)
    n, d = states.shape
    re = states.real.astype(np.float64)
    im = states.imag.astype(np.float64)
    per = re * re + im * im                      # (N, d)
    e_cell = per.sum(axis=1)
    channel_energy = per.sum(axis=0) if n else np.zeros(d, dtype=np.float64)
    energy = float(e_cell.sum())
    mag = np.hypot(re[:, 0], im[:, 0]) if n else np.zeros(0)
    nz = mag > 0
    if np.any(nz):
        mr = float(np.mean(re[nz, 0] / mag[nz]))
        mi = float(np.mean(im[nz, 0] / mag[nz]))
        mean_phase, coherence = float(np.arctan2(mi, mr)), float(np.hypot(mr, mi))
    else:
        mean_phase, coherence = 0.0, 0.0
    if bbox is None and n:
        xy = np.asarray(xy, dtype=np.int64)
        bbox = (int(xy[:, 0].min()), int(xy[:, 1].min()), int(xy[:, 0].max()) + 1, int(xy[:, 1].max()) + 1)
    emax = float(e_cell.max()) if n else 0.0
    hi = emax if emax > 0 else 1.0
    counts, edges = np.histogram(e_cell, bins=BINS, range=(0.0, hi))
    return {"energy": energy, "matter_count": int(n), "bbox": bbox if n else None,
            "mean_phase": mean_phase, "phase_coherence": coherence,
            "channel_energy": np.asarray(channel_energy, dtype=np.float64),
            "energy_histogram": {"edges": edges.astype(np.float64), "counts": counts.astype(np.int64)}}


def analyze_field(field: np.ndarray, x0: int = 0, y0: int = 0) -> Dict[str, Any]:
    """Analysis of every cell of a dense (h, w, d) region whose cell [0, 0] is at (x0, y0)."""
    field = np.asarray(field)
    h, w, d = field.shape
    bbox = (int(x0), int(y0), int(x0) + w, int(y0) + h) if h and w else None
    return analyze_cells(None, field.reshape(h * w, d), bbox=bbox)

"""The update rule of one step (DESIGN §3.3, points 2-5).

Mirrors ``ath_step_rule`` of the C engine: the complex64 state and the float32
model output are promoted to float64, the rule is evaluated in float64 and the
new state is rounded to complex64 once; the norm n stays float64 (it is
compared with the threshold).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def apply_rule(psi: np.ndarray, delta: np.ndarray, *, unitary: bool,
               gamma_decay: float) -> Tuple[np.ndarray, np.ndarray]:
    """One update for N cells.

    psi: (N, d) complex64 current states; delta: (N, 2d) float32 model output
    [Re δ_0..Re δ_{d-1}, Im δ_0..Im δ_{d-1}].
    Returns (psi_new (N, d) complex64 normalised, n (N,) float64 pre-normalisation norm).
    """
    d = psi.shape[1]
    pr = psi.real.astype(np.float64)
    pi = psi.imag.astype(np.float64)
    dr = delta[:, :d].astype(np.float64)
    di = delta[:, d:].astype(np.float64)
    if unitary:                                   # δ <- δ·ψ (complex, element-wise)
        dr, di = dr * pr - di * pi, dr * pi + di * pr
    dr = dr - gamma_decay * pr                    # Lindblad decay δ <- δ - γψ
    di = di - gamma_decay * pi
    nr = pr + dr
    ni = pi + di
    n = np.sqrt(np.sum(nr * nr + ni * ni, axis=1))
    denom = (n + 1e-9)[:, None]
    out = np.empty(psi.shape, dtype=np.complex64)
    out.real = nr / denom
    out.imag = ni / denom
    return out, n

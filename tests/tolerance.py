"""Float32 comparison tolerances that hold on any machine.

A float32 result differs from the exact one by rounding in every addition
and multiplication; how much depends on the order of the reduction (BLAS
kernel, OpenBLAS core type, thread count), so a fixed ``atol`` passes on one
machine and fails on another.  The standard bound (Higham, *Accuracy and
Stability of Numerical Algorithms*, 3.1) for a dot product of length K
computed in precision u is ``|fl(x.y) - x.y| <= gamma_K * sum|x_i y_i|`` with
``gamma_K = K u / (1 - K u)``.  These helpers compute that bound from the
magnitudes of the operands, so a tolerance scales with both the magnitude
and the reduction length, and stays far below the size of a real error.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: unit roundoff of float32 (2**-24)
U32: float = float(np.finfo(np.float32).eps) / 2


def gamma(k: int, u: float = U32) -> float:
    """gamma_k = k u / (1 - k u): the relative error bound of a length-k reduction."""
    ku = k * u
    assert ku < 0.5, "reduction too long for a first-order bound"
    return ku / (1.0 - ku)


def conv_stack_tol(x: np.ndarray, ws: Sequence[np.ndarray], bs: Sequence[Optional[np.ndarray]],
                   periodic: bool = False, factor: float = 2.0) -> np.ndarray:
    """Elementwise tolerance for a float32 stack of Conv2d(padding=k//2) layers.

    The stack is run in float64 on |x|, |w|, |b| with the activations left
    out (relu, tanh and gelu all satisfy |act(t)| <= |t| + small), which
    bounds every partial sum; the rounding error of the whole stack is at most
    gamma(sum of the layers' reduction lengths + layers) times that bound.
    ``factor`` covers two float32 implementations compared with each other.
    """
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.abs(np.asarray(x, dtype=np.float64)))
    k_total = 0
    for w, b in zip(ws, bs):
        k = w.shape[-1]
        wt = torch.from_numpy(np.abs(np.asarray(w, dtype=np.float64)))
        bt = torch.from_numpy(np.abs(np.asarray(b, dtype=np.float64))) if b is not None else None
        if periodic:
            t = F.conv2d(F.pad(t, (k // 2,) * 4, mode="circular"), wt, bt)
        else:
            t = F.conv2d(t, wt, bt, padding=k // 2)
        # gelu(t) can exceed |t| by at most ~0.17 (near t = -0.75): bound it too
        t = t + 0.2
        k_total += int(w.shape[1]) * k * k + 2
    return factor * gamma(k_total) * t.numpy() + 1e-30


def sum_tol(values: np.ndarray, axis=None, factor: float = 2.0) -> np.ndarray:
    """Tolerance of a float32 sum of ``values`` along ``axis`` (all axes: None)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    n = a.size if axis is None else int(np.prod([a.shape[i] for i in np.atleast_1d(axis)]))
    return factor * gamma(max(n, 1)) * a.sum(axis=axis) + 1e-30


def assert_close_f32(actual, desired, tol) -> None:
    """|actual - desired| <= tol elementwise (tol: array or scalar), with a readable failure."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    err = np.abs(actual.astype(np.complex128) - desired.astype(np.complex128))
    bad = err > np.broadcast_to(tol, err.shape)
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(err - np.broadcast_to(tol, err.shape))), err.shape)
        raise AssertionError(f"{int(bad.sum())} of {err.size} elements exceed the float32 bound; worst at {i}: "
                             f"|{actual[i]} - {desired[i]}| = {err[i]:.3g} > {np.broadcast_to(tol, err.shape)[i]:.3g}")


def reduction_length(ws: Sequence[np.ndarray]) -> int:
    """Sum over a conv stack's layers of in_channels * k * k (the dot-product lengths)."""
    return int(sum(int(w.shape[1]) * int(w.shape[-1]) ** 2 for w in ws))


def simulation_tol(reference: np.ndarray, ws: Sequence[np.ndarray], steps: int, c: float = 2.0) -> float:
    """Tolerance for two float32 simulations of ``steps`` steps of a conv-stack rule that
    differ only in the order of their reductions (e.g. GEMMs of different shapes: sparse
    tiles vs the whole grid, another BLAS kernel or thread count).

    Rounding errors of a length-K reduction behave like a random walk (Higham & Mary,
    probabilistic error analysis: ~sqrt(K) u instead of the worst case K u), each step adds
    its own, and the size is set by the field's magnitude:
    ``c * u * sqrt(K) * steps * max|reference|``.  For the small test models this is ~1e-5,
    far below the 1e-4 .. 1e-1 differences of a real defect (e.g. a wrong edge padding).
    """
    k = max(1, reduction_length(ws))
    return float(c * U32 * np.sqrt(k) * max(1, steps) * float(np.max(np.abs(reference))))

"""The update rule has one copy in C (src/core/rule.c) and one each in the fallback
(_fallback/rule.py) and the motor (motor.engine_rule).  They must agree bit for bit: the
same float64 operations in the same order (the norm summed channel by channel, k = 0..d-1),
one rounding to complex64 at the end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from atheria_core._fallback.rule import apply_rule
from atheria_core.motor import engine_rule


def _delta(batch: np.ndarray) -> np.ndarray:
    """A deterministic, element-wise model output (float32 in, float32 out)."""
    return (np.sin(batch * np.float32(3.7)) * np.float32(0.6)).astype(np.float32)


@pytest.mark.parametrize("d", [1, 3, 8, 13])
@pytest.mark.parametrize("unitary,gamma", [(False, 0.0), (True, 0.0), (False, 0.25), (True, 0.1)])
def test_c_fallback_motor_rule_bit_identical(c_backend, d, unitary, gamma):
    rng = np.random.default_rng(d)
    n = 500
    coords = np.stack([np.arange(n) * 3, np.zeros(n, np.int64), np.zeros(n, np.int64)], 1).astype(np.int64)
    psi = (rng.standard_normal((n, d)) + 1j * rng.standard_normal((n, d))).astype(np.complex64)
    eng = c_backend.Engine(d, background="zero", threshold=0.0, patch=1, gamma_decay=gamma, unitary=unitary)
    eng.set_model(_delta)
    eng.add_particles(coords, psi)
    eng.step()
    got = eng.get_states(coords)

    x = np.concatenate([psi.real, psi.imag], axis=1).astype(np.float32)   # (n, 2d) model input
    delta = _delta(x)
    fb, _ = apply_rule(psi, delta, unitary=unitary, gamma_decay=gamma)
    np.testing.assert_array_equal(got.view(np.float32), np.ascontiguousarray(fb).view(np.float32))

    xt = torch.from_numpy(x.T.copy()).reshape(1, 2 * d, 1, n)
    mt = engine_rule(xt, torch.from_numpy(delta.T.copy()).reshape(1, 2 * d, 1, n), unitary=unitary,
                     gamma_decay=gamma)[0, :, 0, :].numpy().T
    mo = np.ascontiguousarray((mt[:, :d] + 1j * mt[:, d:]).astype(np.complex64))
    np.testing.assert_array_equal(got.view(np.float32), mo.view(np.float32))

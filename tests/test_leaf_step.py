"""The sparse Engine's leaf step (src/core/eval_leaf.c) against its general path.

A step on a zero background with a built-in block model (ZeroModel, ConvModel),
off a periodic window, runs straight from the matter leaves once the matter is in
the order a step leaves it.  Any other change of the matter (here: re-adding one
cell with its own value before every step) sends the step through the general
path (evaluated set, tile index, Morton sort).  Both must give the same cells, in
the same order, with the same bits, step after step, through births and deaths.
On the pure-Python backend the same comparison runs (it has one path).
"""
from __future__ import annotations

import numpy as np
import pytest

import atheria_core as ac

NATIVE = ac.BACKEND == "c"


def _conv(d, seed, kernels, scale=0.5, bias=0.1):
    rng = np.random.default_rng(seed)
    ws, bs, cin = [], [], 2 * d
    for i, k in enumerate(kernels):
        co = 2 * d if i == len(kernels) - 1 else 6
        ws.append((rng.standard_normal((co, cin, k, k)) * scale).astype(np.float32))
        bs.append((rng.standard_normal(co) * bias).astype(np.float32))
        cin = co
    return ac.ConvModel(ws, bs, activation="tanh")


def _blob(d, seed, n, lo, hi, planes=(0,), offset=(0, 0)):
    rng = np.random.default_rng(seed)
    xy = np.unique(rng.integers(lo, hi, (n, 2)), axis=0)
    coords = np.concatenate([np.concatenate([xy + np.array(offset), np.full((len(xy), 1), z)], 1)
                             for z in planes]).astype(np.int64)
    states = (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d))).astype(np.complex64)
    return coords, states


CASES = {
    # ZeroModel: the steady state (no birth, no death), values replaced in place
    "zero_steady": dict(d=8, model=lambda d: ac.ZeroModel(), engine=dict(patch=3), blob=dict(n=600, lo=0, hi=40)),
    # a conv net with a bias: halo cells are born, weak cells die
    "conv_births": dict(d=2, model=lambda d: _conv(d, 1, (3,)), engine=dict(patch=3, threshold=0.3),
                        blob=dict(n=200, lo=-12, hi=12)),
    "conv_two_layers": dict(d=4, model=lambda d: _conv(d, 2, (3, 3), scale=0.3), engine=dict(patch=5, threshold=0.5),
                            blob=dict(n=300, lo=-20, hi=20)),
    # zero-preserving models whose receptive radius is below the patch radius: the leaf step
    # leaves out the blocks with no matter within that radius (quiet blocks); births happen
    # only near matter (conv without bias) and must all be there
    "conv_no_bias_wide_patch": dict(d=2, model=lambda d: _conv(d, 5, (3,), bias=0.0),
                                    engine=dict(patch=7, threshold=0.3), blob=dict(n=250, lo=-15, hi=15)),
    "zero_wide_patch_window": dict(d=4, model=lambda d: ac.ZeroModel(), engine=dict(
        patch=5, extent="zero", grid_size=48, threshold=0.05), blob=dict(n=400, lo=0, hi=48)),
    # a 'zero' window: blocks clipped at the edge, E clipped to the window
    "zero_window_edge": dict(d=2, model=lambda d: _conv(d, 3, (5,), scale=0.3), engine=dict(
        patch=7, extent="zero", grid_size=40, threshold=0.2), blob=dict(n=300, lo=0, hi=40)),
    # adjacent planes share Morton cubes; far and negative coordinates
    "planes": dict(d=2, model=lambda d: _conv(d, 4, (3,)), engine=dict(patch=3, threshold=0.3),
                   blob=dict(n=150, lo=-8, hi=8, planes=(-1, 0, 1, 5))),
    # more than 2048 cells of E: the step runs on every thread, the blocks in several batches
    # per thread; d_state 8 spans a block in one rule chunk (its cells in storage order)
    "zero_large": dict(d=8, model=lambda d: ac.ZeroModel(), engine=dict(patch=3), blob=dict(n=5000, lo=0, hi=80)),
    # a value pool over 8 MiB (~1.6e5 cells): not kept between steps, written with streaming stores
    "zero_pool_streamed": dict(d=8, model=lambda d: ac.ZeroModel(), engine=dict(patch=3),
                               blob=dict(n=260000, lo=0, hi=512)),
    # d_state 16: a block's span is longer than one rule chunk (the row-order update)
    "conv_wide": dict(d=16, model=lambda d: _conv(d, 6, (3,), scale=0.2), engine=dict(patch=3, threshold=0.9),
                      blob=dict(n=3000, lo=-40, hi=40)),
    "far": dict(d=2, model=lambda d: _conv(d, 5, (3,)), engine=dict(patch=3, threshold=0.3),
                blob=dict(n=150, lo=0, hi=20, offset=(3 * 2 ** 40 + 5, -(2 ** 33) - 7))),
}


def _engine(case):
    e = ac.Engine(case["d"], background="zero", seed=1, **case["engine"])
    e.set_model(case["model"](case["d"]))
    coords, states = _blob(case["d"], 7, **case["blob"])
    e.add_particles(coords, states)
    return e


def _touch(e):
    """Re-add one stored cell with its own value: the matter is unchanged, but it was changed."""
    c, s = e.matter()
    if len(c):
        e.add_particles(c[:1], s[:1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_leaf_step_equals_general_path(name):
    case = CASES[name]
    leaf, general = _engine(case), _engine(case)
    counts = set()
    for step in range(6):
        _touch(general)
        leaf.step()
        general.step()
        if NATIVE:
            # the first step orders the matter (general path), every later one runs from the leaves
            assert leaf.stats()["path"] == ("leaves" if step > 0 else "blocks"), (step, leaf.stats())
            assert general.stats()["path"] in ("blocks", "patches")
        c1, s1 = leaf.matter()
        c2, s2 = general.matter()
        np.testing.assert_array_equal(c1, c2)
        assert s1.tobytes() == s2.tobytes(), f"step {step}"
        assert leaf.stats()["evaluated"] == general.stats()["evaluated"]
        counts.add(len(c1))
    if not name.startswith("zero_"):
        assert len(counts) > 1, "the case must exercise births or deaths"


@pytest.mark.skipif(not NATIVE, reason="thread count: native engine")
@pytest.mark.parametrize("name", ["conv_two_layers", "conv_wide"])
def test_leaf_step_independent_of_threads(name):
    case = CASES[name]
    out = []
    for threads in (1, 2):
        ac.set_num_threads(threads)
        try:
            e = _engine(case)
            for _ in range(4):
                e.step()
            out.append(e.matter())
        finally:
            ac.set_num_threads(2)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1].tobytes() == out[1][1].tobytes()


def test_leaf_step_nonfinite_changes_nothing():
    """A model that turns non-finite on a leaf step: the step raises, the matter stays."""
    d = 2
    e = _engine(dict(d=d, model=lambda d: _conv(d, 1, (3,)), engine=dict(patch=3, threshold=0.3),
                     blob=dict(n=200, lo=-12, hi=12)))
    e.step()
    # finite weights whose sums overflow float32: the update is infinite
    w = np.full((2 * d, 2 * d, 3, 3), 3e38, np.float32)
    e.set_model(ac.ConvModel([w], [np.zeros(2 * d, np.float32)]))
    c0, s0 = e.matter()
    n0 = e.get_step_count()
    with pytest.raises(Exception, match="non-finite"):
        e.step()
    c1, s1 = e.matter()
    np.testing.assert_array_equal(c0, c1)
    assert s0.tobytes() == s1.tobytes()
    assert e.get_step_count() == n0

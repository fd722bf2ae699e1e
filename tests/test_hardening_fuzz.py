"""Property test of the argument converters: arbitrary Python objects passed to every
coordinate / roi / state / integer argument of both backends raise only TypeError,
ValueError or OverflowError (or succeed), never crash, and never change the engine
when they raise.  Runs in a PYTHONMALLOC=debug subprocess (a crash fails the test)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("hypothesis")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import sys, numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck
import atheria_core._core as C, atheria_core._fallback as P
ALLOWED = (TypeError, ValueError, OverflowError)
# (n of step() and the radius of activate_neighborhood are left out: a valid huge value is
# real work, not a converter question; their bounds are tested in test_hardening.py)

class Index:
    def __init__(self, v): self.v = v
    def __index__(self): return self.v
class BadIndex:
    def __index__(self): raise ValueError("no")
class Arr:
    def __init__(self, a): self.a = a
    def __array__(self, dtype=None, copy=None):
        with np.errstate(all="ignore"):
            return np.asarray(self.a, dtype=dtype)

ints = st.one_of(st.integers(-2**70, 2**70), st.sampled_from([2**60, 2**60 + 1, -2**60, 2**63, -2**63 - 1]))
leaf = st.one_of(ints, st.floats(), st.booleans(), st.none(), st.text(max_size=3), st.binary(max_size=3),
                 ints.map(Index), st.just(BadIndex()), st.complex_numbers(max_magnitude=10))
seq = st.lists(leaf, max_size=5)
obj = st.one_of(leaf, seq, seq.map(tuple), st.lists(st.lists(leaf, max_size=4), max_size=4),
                st.lists(ints, min_size=2, max_size=4).map(np.array),
                st.lists(st.floats(), min_size=2, max_size=3).map(np.array),
                st.lists(st.lists(ints, min_size=3, max_size=3), max_size=3).map(lambda x: np.array(x, dtype=object)),
                seq.map(Arr), st.dictionaries(st.text(max_size=2), leaf, max_size=3),
                st.lists(ints, max_size=3).map(set), st.lists(ints, max_size=3).map(iter))

def snapshot(e):
    c, s = e.matter()
    return c.tobytes(), s.tobytes(), e.get_step_count(), e.d_state

def calls(mod, e, v, o):
    return [lambda: e.add_particle(o, [1, 1]), lambda: e.add_particle((1, 2, 3), o), lambda: e.get_state_at(o),
            lambda: e.add_particles(o, np.ones((1, 2))), lambda: e.add_particles([[1, 2, 3]], o),
            lambda: e.get_states(o), lambda: e.to_dense(o), lambda: e.to_dense((0, 0, 2, 2), o),
            lambda: e.activate_neighborhood(o, 1), lambda: e.query_radius(o, 1.0),
            lambda: e.query_radius((0, 0, 0), o),
            lambda: e.compute_visualization("density", o), lambda: v.get_fluctuation(o), lambda: v.region(o),
            lambda: v.cells(o), lambda: mod.Coord3D(o, 0, 0), lambda: mod.add(o, 1)]

@settings(max_examples=int(sys.argv[1]), derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(o=obj)
def check(o):
    for mod in (C, P):
        e = mod.Engine(2, grid_size=8, extent="zero", background="zero")
        e.add_particle((1, 1, 0), [1, 2])
        e.set_model(mod.ZeroModel())
        v = mod.HarmonicVacuum(2)
        for f in calls(mod, e, v, o):
            before = snapshot(e)
            try:
                f()
            except ALLOWED:
                assert snapshot(e) == before, (f, o)
check()
print("OK")
'''


def test_random_arguments_never_crash():
    env = dict(os.environ, PYTHONMALLOC="debug", PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.run([sys.executable, "-c", SCRIPT, "300"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("OK"), f"rc {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"

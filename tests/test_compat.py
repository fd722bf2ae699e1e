"""Drop-in for the original module (issue 8): top-level additions and ``atheria_core.compat``.

The compat tests drive the original API the way the original backend did
(per-cell loops with torch tensors, lists of Coord3D, [1, C, H, W] dense
states), on both backends.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import atheria_core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- top level
def test_version_ints_match_version_string(ac):
    import atheria_core._version as v
    parts = tuple(int(p) for p in atheria_core.__version__.split("."))
    assert (atheria_core.VERSION_MAJOR, atheria_core.VERSION_MINOR, atheria_core.VERSION_PATCH) == parts[:3]
    assert ac.get_version() == atheria_core.__version__ == v.__version__
    assert all(isinstance(x, int) for x in (v.VERSION_MAJOR, v.VERSION_MINOR, v.VERSION_PATCH))


def test_has_torch_support_means_torch_tensors_accepted():
    expected = importlib.util.find_spec("torch") is not None
    assert atheria_core.has_torch_support() is expected
    # the shim has its own flag; it implies torch
    assert isinstance(atheria_core.has_torch_shim(), bool)
    if atheria_core.has_torch_shim():
        assert atheria_core.has_torch_support()


def test_has_torch_support_true_without_shim(tmp_path):
    env = dict(os.environ, ATHERIA_NO_SHIM="1", PYTHONPATH=os.path.join(ROOT, "python"))
    code = ("import atheria_core as ac; import torch; "
            "print(ac.has_torch_support(), ac.has_torch_shim())")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "False"]

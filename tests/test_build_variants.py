"""The serial (no OpenMP) build: compiles -Werror clean and gives the same numbers.

Builds a copy of the sources with ATHERIA_NO_OPENMP=1 (as a compiler without
OpenMP would) and compares a short simulation with the installed build.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIM = r"""
import sys, numpy as np
import atheria_core as ac
assert ac.BACKEND == "c", ac.BACKEND_REASON
rng = np.random.default_rng(5)
w = [rng.standard_normal((6, 4, 3, 3)).astype(np.float32) * 0.3,
     rng.standard_normal((4, 6, 3, 3)).astype(np.float32) * 0.3]
e = ac.Engine(2, background="vacuum", patch=5, seed=11)
e.set_model(ac.ConvModel(w, None, activation="tanh"))
e.add_particles(np.array([[0, 0, 0], [3, 1, 0], [-2, 4, 0]]), np.ones((3, 2), np.complex64))
e.step(4)
c, s = e.matter()
np.save(sys.argv[1], np.concatenate([c.astype(np.float64), s.view(np.float32).astype(np.float64)], 1))
print("openmp", ac.has_openmp())
"""


def _run_sim(pythonpath: str, out: str) -> str:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    r = subprocess.run([sys.executable, "-c", SIM, out], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_serial_build_matches_openmp_build(tmp_path):
    src = tmp_path / "src_copy"
    src.mkdir()
    for name in ("include", "src", "python"):
        shutil.copytree(os.path.join(ROOT, name), src / name,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    env = dict(os.environ, ATHERIA_NO_OPENMP="1", ATHERIA_NO_TORCH="1")
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "building serial" in build.stderr
    serial = _run_sim(str(src / "python"), str(tmp_path / "serial.npy"))
    assert "openmp False" in serial
    parallel = _run_sim(os.path.join(ROOT, "python"), str(tmp_path / "parallel.npy"))
    assert "openmp True" in parallel
    a, b = np.load(tmp_path / "serial.npy"), np.load(tmp_path / "parallel.npy")
    assert a.shape == b.shape and a.shape[0] > 3
    np.testing.assert_array_equal(a, b)

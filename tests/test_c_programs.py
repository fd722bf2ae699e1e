"""Builds and runs the pure-C test programs (tests/c/*.c) against src/core.

They exercise the C library without Python.  Each is run with 1 and 2
OpenMP threads.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = sorted(glob.glob(os.path.join(ROOT, "tests", "c", "*.c")))


def _cc() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is required to build the C tests"
    return cc


def _openmp_flag(cc: str, tmp) -> list[str]:
    src = tmp / "omp.c"
    src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads()>0?0:1;}\n")
    r = subprocess.run([cc, "-fopenmp", str(src), "-o", str(tmp / "omp")], capture_output=True)
    return ["-fopenmp"] if r.returncode == 0 else ["-Wno-unknown-pragmas"]


def test_c_programs_exist():
    assert PROGRAMS, "tests/c/*.c should hold the pure-C test programs"


@pytest.mark.parametrize("program", PROGRAMS, ids=[os.path.basename(p) for p in PROGRAMS])
def test_c_program(program, tmp_path):
    cc = _cc()
    exe = tmp_path / "prog"
    sources = sorted(glob.glob(os.path.join(ROOT, "src", "core", "*.c")))
    cmd = [cc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
           "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "include"), *_openmp_flag(cc, tmp_path),
           program, *sources, "-lm", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{build.stderr}"
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, f"{os.path.basename(program)} failed (threads={threads}):\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
        assert " 0 failed" in run.stdout, run.stdout[-2000:]

#!/usr/bin/env bash
# Creates .venv (if needed), installs the pinned dependencies and builds
# atheria_core in place (editable).  Idempotent; safe to re-run.
#   PYTHON=python3.11 bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# torch is pinned: the CPU build of 2.13.0 is what this project is tested with
# (an unpinned 'torch' may pull a multi-GB CUDA build).
.venv/bin/python -m pip install -q "setuptools>=64" wheel "numpy>=1.23" "torch==2.13.0" ninja pytest matplotlib tqdm "hypothesis>=6"
# No build isolation: the LibTorch shim is built only when torch is importable
# at build time (docs/build.md).
# Atheris (libFuzzer for Python) runs the long fuzz campaigns in fuzz/; optional
.venv/bin/python -m pip install -q "atheris>=2.3" || echo "atheris not installed: fuzz/ long runs unavailable (CI uses Hypothesis)"
.venv/bin/python -m pip install -q --no-build-isolation -e .
.venv/bin/python -c "import atheria_core as ac; print('atheria_core', ac.__version__, 'backend:', ac.BACKEND, '| OpenMP:', ac.has_openmp(), '| LibTorch shim:', ac.has_torch_support())"

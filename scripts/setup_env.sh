#!/usr/bin/env bash
# Creates .venv (if needed), installs the pinned dependencies and the optional
# extras the dev setup uses, and builds atheria_core in place (editable).
# Idempotent; safe to re-run.
#   PYTHON=python3.11 bash scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# torch is pinned: the CPU build of 2.13.0 is what this project is tested with
# (an unpinned 'torch' may pull a multi-GB CUDA build).  ninja: the shim built on
# first load by torch.utils.cpp_extension (docs/torchscript.md).
.venv/bin/python -m pip install -q "setuptools>=64" wheel "numpy>=1.23" "torch==2.13.0" ninja
# The extras of pyproject.toml that the dev setup uses: dev (pytest, hypothesis),
# viz (Pillow PNG frames), server (aiohttp), server-test (Playwright driving the
# system chromium; no browser download).
.venv/bin/python -m pip install -q pytest matplotlib tqdm "hypothesis>=6" "Pillow>=9" "aiohttp>=3.9" "playwright>=1.40"
# Atheris (libFuzzer for Python) runs the long fuzz campaigns in fuzz/; optional
.venv/bin/python -m pip install -q "atheris>=2.3" || echo "atheris not installed: fuzz/ long runs unavailable (CI uses Hypothesis)"
# The viewer's browser test uses Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium not found (apt-get install chromium): the viewer's browser test will fail" >&2
    fi
fi
# No build isolation: the LibTorch shim is built only when torch is importable
# at build time (docs/build.md).
.venv/bin/python -m pip install -q --no-build-isolation -e ".[dev,viz,server,server-test]"
.venv/bin/python -c "import atheria_core as ac; print('atheria_core', ac.__version__, 'backend:', ac.BACKEND, '| OpenMP:', ac.has_openmp(), '| LibTorch shim:', ac.has_torch_shim())"

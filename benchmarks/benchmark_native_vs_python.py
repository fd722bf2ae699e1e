#!/usr/bin/env python
"""Native engines (``atheria_core``) against the reference ``AetheriaMotor`` and the
strongest peers, side by side: the command line of the package ``benchmarks/atheria_bench``
(its ``cli`` module documents the method, the workloads and the outputs).

Usage::

    python benchmarks/benchmark_native_vs_python.py [--quick] [--threads N]
        [--only dense,sparse,overhead] [--out DIR] [--steps N] [--warmup N]
        [--isolation process|worker] [--timeout S] [--omp-wait-policy passive|active|inherit]
"""
from __future__ import annotations

import os
import sys

# the benchmark is the package benchmarks/atheria_bench (plan, workloads, runners, worker, targets,
# report, cli); this file stays its command line (and the worker entry point it re-runs)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atheria_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

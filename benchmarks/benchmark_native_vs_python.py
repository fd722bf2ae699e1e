#!/usr/bin/env python
"""Native engines (``atheria_core``) against the reference ``AetheriaMotor``, side by side.

Every workload runs the engines it compares in one process, on the same model
and the same initial field, in lock-step (one step of each engine in turn, the
order rotated every step, so machine noise hits them alike), and reports:

* median ms/step over ``--steps`` steps after ``--warmup`` steps, steps/s;
* cells/s: *active* cells (matter cells at the start of the step; the whole grid
  for dense engines) and *evaluated* cells (cells the step computed: the whole
  grid for dense engines and AetheriaMotor, matter + patch neighbourhood for
  the sparse Engine, from ``Engine.stats()``);
* memory: the worker's peak RSS (``getrusage ru_maxrss``) minus its RSS before the
  workload (meaningful with ``--isolation process``: one fresh process per
  workload), the current-RSS growth (``/proc/self/statm``) caused by creating each
  engine and loading its field, and for sparse engines bytes per stored cell
  (that growth divided by the matter count);
* max |Δψ| between each native engine and the reference after the same number
  of steps (sparse engines: ``to_dense`` over the window against the dense
  field).  ``exact`` comparisons must agree to float32 rounding (< 1e-4).

Workloads (``--only dense,sparse,overhead`` or workload names):

* ``dense``: demo U-Net and bias-free local conv net on 64², 128², 256²;
  ``DenseEngine`` + TorchScript, ``DenseEngine`` + built-in ``ConvModel`` (local
  net), ``AetheriaMotor`` + eager model.
* ``sparse``: the local net on clusters of matter covering 0.1 %, 1 %, 10 % of a
  1024² window, zero background, threshold 0 (sparse ``Engine`` + TorchScript /
  ConvModel vs ``AetheriaMotor`` on the 1024² field); an unbounded vacuum
  universe growing from a seed cluster; ``to_dense`` of the 1024² window with
  1 % matter.
* ``overhead``: built-in ``ZeroModel``, d_state 8: sparse ``Engine`` with 1e3..1e6
  active cells, ``DenseEngine`` vs ``AetheriaMotor`` (model None).

Outputs in ``--out`` (default ``bench_out/``): ``results.json`` (all raw numbers,
machine info, thread counts, command), ``results.md`` (tables and targets),
``time_vs_cells.png``.  Exit code 1 if any workload errored (its row says why).

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

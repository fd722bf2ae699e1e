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

import datetime as _dt
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from .common import ROOT, EXACT_TOL, GROUPS, _json_default
from .plan import build_plan, select_plan
from .worker import worker_main, Worker
from .targets import evaluate_targets
from .report import write_markdown, write_plot

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 2 timed steps (< ~60 s)")
    ap.add_argument("--threads", type=int, default=None,
                    help="atheria_core.set_num_threads and torch threads (default: all CPUs)")
    ap.add_argument("--only", default=None,
                    help=f"comma-separated groups ({','.join(GROUPS)}) or workload names/prefixes")
    ap.add_argument("--out", default=os.path.join(os.getcwd(), "bench_out"), help="output directory")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per workload (overrides the plan)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps per workload (overrides the plan)")
    ap.add_argument("--isolation", choices=("process", "worker"), default=None,
                    help="process: a fresh subprocess per workload (per-workload peak RSS; default for full runs); "
                         "worker: one subprocess for all, restarted after a crash (default with --quick)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per workload (default 900, quick 120)")
    ap.add_argument("--demo-root", default=os.path.join(ROOT, "output"),
                    help="experiments root: DEMO_UNET / DEMO_LOCAL_CONV are used when present")
    ap.add_argument("--omp-wait-policy", choices=("passive", "active", "inherit"), default="passive",
                    help="OMP_WAIT_POLICY of the worker processes (default passive; 'inherit' keeps the environment's). "
                         "On a loaded machine libgomp's default spin-then-sleep policy makes short parallel regions "
                         "of the engine and of torch wait whole scheduler ticks (10-50x slower steps)")
    ap.add_argument("--list", action="store_true", help="print the workloads and exit")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_models", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.warmup is not None and args.warmup < 0:
        ap.error("--warmup must be >= 0")
    if args.isolation is None:
        args.isolation = "worker" if args.quick else "process"
    if args.timeout is None:
        args.timeout = 120.0 if args.quick else 900.0
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args._worker:
        return worker_main(args.threads, args._models, args.demo_root)
    plan = select_plan(build_plan(args.quick, args.steps, args.warmup), args.only)
    if args.list:
        for w in plan:
            print(f"{w['group']:9s} {w['name']:32s} {json.dumps(w['params'])}")
        return 0
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    models_dir = os.path.join(out, "models")
    t_start = time.perf_counter()
    try:
        from tqdm import tqdm
        bar = None if args.no_progress else tqdm(total=len(plan), unit="workload", dynamic_ncols=True)
    except ImportError:
        bar = None

    results: List[Dict[str, Any]] = []
    worker: Optional[Worker] = None
    machine: Dict[str, Any] = {}

    def get_worker() -> Worker:
        nonlocal worker
        if worker is None or worker.proc.poll() is not None:
            worker = Worker(args, models_dir)
        return worker

    try:
        w = get_worker()
        res, why = w.request({"cmd": "info"}, max(args.timeout, 120.0))
        if res is None:
            print(f"benchmark worker failed to start: {why}", file=sys.stderr)
            worker = None
        else:
            machine = res["info"]
        for spec in plan:
            if bar is not None:
                bar.set_description(spec["name"])
            w = get_worker()
            res, why = w.request({"cmd": "run", "workload": spec}, args.timeout)
            if res is None:
                res = dict(spec, status="error", error=f"worker failure: {why.splitlines()[0] if why else ''}",
                           traceback=why, engines=[], comparisons=[])
                worker = None
            elif args.isolation == "process":
                w.close()
                worker = None
            results.append(res)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{spec['name']}: {res.get('status')}")
            else:
                print(f"[{len(results)}/{len(plan)}] {spec['name']}: {res.get('status')} "
                      f"{res.get('error') or ''} ({res.get('wall_s') or 0:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if worker is not None:
            worker.close()
        if bar is not None:
            bar.close()

    targets = evaluate_targets(results)
    meta = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "argv": list(sys.argv), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick, "isolation": args.isolation, "threads": args.threads, "timeout_s": args.timeout,
        "wall_s": time.perf_counter() - t_start, "machine": machine, "exact_tolerance": EXACT_TOL,
        "cwd": os.getcwd(), "repo": ROOT,
        "definitions": {
            "ms_median": "median wall time of one step over the timed steps (perf_counter)",
            "active_cells": "matter cells at the start of a step (dense engines: all grid cells); "
                            "for the Python engine on sparse workloads: the native engine's matter at that step",
            "evaluated_cells": "cells computed by the step (sparse: Engine.stats()['evaluated']; dense: H*W)",
            "setup_rss_delta_bytes": "current RSS growth (/proc/self/statm) while creating the engine and its field",
            "bytes_per_stored_cell": "setup_rss_delta_bytes / stored cells (overhead_sparse: RSS growth after the "
                                     "steps / cells)",
            "rss.peak_delta_bytes": "getrusage ru_maxrss minus RSS before the workload (per workload only with "
                                    "isolation=process)",
            "max_abs_diff": "max |psi_native - psi_reference| over the field after the same number of steps",
        },
    }
    try:  # read-only
        meta["git_head"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                          text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        meta["git_head"] = None
    doc = {"meta": meta, "targets": targets, "workloads": results}
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(doc, fh, indent=1, default=_json_default, allow_nan=True)
    write_markdown(os.path.join(out, "results.md"), meta, results, targets)
    try:
        write_plot(os.path.join(out, "time_vs_cells.png"), results)
    except Exception as exc:  # noqa: BLE001
        print(f"plot failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    n_err = sum(1 for r in results if r.get("status") != "ok")
    print(f"wrote {out}/results.json, results.md, time_vs_cells.png ({len(results)} workloads, {n_err} errors, "
          f"{meta['wall_s']:.0f} s)")
    return 1 if n_err else 0

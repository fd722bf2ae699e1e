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

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import resource
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY_DIR = os.path.join(ROOT, "python")
RESULT_TAG = "@@ATHERIA_BENCH_RESULT "
EXACT_TOL = 1e-4
#: bytes per stored cell are shown in the table only from this many stored cells (page granularity)
MIN_CELLS_FOR_BPC = 100_000
GROUPS = ("dense", "sparse", "overhead")
SEED = 0

# =========================================================================== plan


def _spec(name: str, group: str, kind: str, **params: Any) -> Dict[str, Any]:
    return {"name": name, "group": group, "kind": kind, "params": params}


def build_plan(quick: bool, steps: Optional[int], warmup: Optional[int]) -> List[Dict[str, Any]]:
    """The list of workload specs (full or quick sizes)."""
    def st(full: int, q: int = 2) -> int:
        return int(steps) if steps is not None else (q if quick else full)

    def wu(full: int, q: int = 1) -> int:
        return int(warmup) if warmup is not None else (q if quick else full)

    plan: List[Dict[str, Any]] = []
    dense_grids = (32,) if quick else (64, 128, 256)
    for model in ("unet", "local"):
        for g in dense_grids:
            plan.append(_spec(f"dense_{model}_{g}", "dense", "dense", model=model, grid=g, d_state=4,
                              warmup=wu(2), steps=st(10)))
    sparse_grid = 128 if quick else 1024
    fracs = ((1.0,) if quick else (0.1, 1.0, 10.0))
    for pct in fracs:
        plan.append(_spec(f"sparse_local_{pct:g}pct_{sparse_grid}", "sparse", "sparse", grid=sparse_grid,
                          pct=pct, blobs=4, d_state=4, warmup=wu(1), steps=st(5)))
    plan.append(_spec("sparse_vacuum_growth", "sparse", "vacuum", seed_side=4 if quick else 8, d_state=4,
                      warmup=0, steps=st(40)))
    plan.append(_spec(f"to_dense_1pct_{sparse_grid}", "sparse", "to_dense", grid=sparse_grid, pct=1.0, blobs=4,
                      d_state=4, reps=5 if quick else 21))
    sparse_cells = (1_000, 10_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    for n in sparse_cells:
        plan.append(_spec(f"overhead_sparse_{n:.0e}".replace("+0", ""), "overhead", "overhead_sparse", cells=n,
                          d_state=8, patch=3, warmup=wu(2), steps=st(8 if n < 1_000_000 else 5)))
    for g in ((64,) if quick else (256, 1024)):
        plan.append(_spec(f"overhead_dense_{g}", "overhead", "overhead_dense", grid=g, d_state=8,
                          warmup=wu(2), steps=st(8)))
    return plan


def select_plan(plan: List[Dict[str, Any]], only: Optional[str]) -> List[Dict[str, Any]]:
    if not only:
        return plan
    keys = [k.strip() for k in only.split(",") if k.strip()]
    out = [w for w in plan if w["group"] in keys or w["name"] in keys
           or any(w["name"].startswith(k) for k in keys)]
    if not out:
        raise SystemExit(f"--only {only!r} selects no workload; groups: {', '.join(GROUPS)}; "
                         f"names: {', '.join(w['name'] for w in plan)}")
    return out


# =========================================================================== helpers (worker)


def rss_now() -> int:
    """Current resident set size in bytes (/proc/self/statm; ru_maxrss where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return rss_peak()


def rss_peak() -> int:
    """Peak RSS of this process in bytes (getrusage ru_maxrss, KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def _median(xs: Sequence[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(statistics.median(xs)) if xs else None


class Ctx:
    """What workloads share inside one worker process."""

    def __init__(self, models_dir: str, demo_root: str, threads: int) -> None:
        self.models_dir = models_dir
        self.demo_root = demo_root
        self.threads = threads
        os.makedirs(models_dir, exist_ok=True)
        self._models: Dict[Tuple[str, int], Tuple[Any, str, Dict[str, Any]]] = {}

    def model(self, kind: str, d_state: int) -> Tuple[Any, str, Dict[str, Any]]:
        """(eager model, TorchScript path, info) for 'unet' / 'local'; exported once, cached by content."""
        key = (kind, d_state)
        if key not in self._models:
            self._models[key] = _build_model(kind, d_state, self)
        return self._models[key]


def _build_model(kind: str, d_state: int, ctx: Ctx) -> Tuple[Any, str, Dict[str, Any]]:
    import torch
    from atheria_core.export import export_module
    from atheria_core.models import LocalConv, UNet

    demo = {"unet": "DEMO_UNET", "local": "DEMO_LOCAL_CONV"}[kind]
    info: Dict[str, Any] = {"kind": kind}
    model = None
    cfg_path = os.path.join(ctx.demo_root, "experiments", demo, "config.json")
    if os.path.isfile(cfg_path):
        try:
            from atheria_core import experiments as E
            exp = E.load_experiment_config(demo, ctx.demo_root)
            if exp.d_state == d_state:
                model = exp.load_model()
                info.update(source=f"experiment {demo} ({exp.latest_checkpoint()})")
            else:
                info["demo_skipped"] = f"{demo} has d_state {exp.d_state} != {d_state}"
        except Exception as exc:  # noqa: BLE001 - fall back to a random model, say why
            info["demo_error"] = f"{type(exc).__name__}: {exc}"
            model = None
    if model is None:
        torch.manual_seed(SEED)
        if kind == "unet":
            model = UNet(d_state, hidden_channels=16, depth=2, activation="gelu")
        else:
            model = LocalConv(d_state, hidden_channels=16, n_layers=2, kernel_size=3, activation="tanh")
        info["source"] = f"random init, torch.manual_seed({SEED})"
    model = model.eval()
    info["class"] = type(model).__name__
    info["params"] = dict(getattr(model, "model_params", {}) or {})
    info["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
    info["receptive_radius"] = getattr(model, "receptive_radius", None)
    h = hashlib.sha256(f"{type(model).__name__}|{torch.__version__}|{d_state}".encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(ctx.models_dir, f"{kind}_d{d_state}_{h.hexdigest()[:12]}.pt")
    if not os.path.isfile(path):
        t0 = time.perf_counter()
        export_module(model, path, d_state=d_state, grid_size=32)
        info["export_s"] = time.perf_counter() - t0
    info["torchscript"] = path
    return model, path, info


def _stats(engine: Any) -> Optional[Dict[str, int]]:
    fn = getattr(engine, "stats", None) or getattr(engine, "_stats", None)
    if fn is None:
        return None
    try:
        return dict(fn())
    except Exception:  # noqa: BLE001
        return None


def _random_states(rng: Any, n: int, d: int) -> Any:
    import numpy as np
    c = rng.standard_normal((n, d)) + 1j * rng.standard_normal((n, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return c.astype(np.complex64)


def make_blobs(grid: int, pct: float, blobs: int, d: int, seed: int = SEED) -> Tuple[Any, Any, Dict[str, Any]]:
    """``blobs`` square clusters (on a regular layout) covering ~pct % of the grid² window.

    Returns (coords (N,3) int64, states (N,d) complex64 of norm 1, info)."""
    import numpy as np
    per = pct / 100.0 * grid * grid / blobs
    side = max(1, int(round(math.sqrt(per))))
    n_side = int(math.ceil(math.sqrt(blobs)))
    cell = grid // n_side
    pts = []
    for b in range(blobs):
        cx = (b % n_side) * cell + cell // 2
        cy = (b // n_side) * cell + cell // 2
        x0, y0 = cx - side // 2, cy - side // 2
        ys, xs = np.mgrid[y0:y0 + side, x0:x0 + side]
        pts.append(np.stack([xs.ravel(), ys.ravel()], 1))
    xy = np.concatenate(pts).astype(np.int64)
    coords = np.concatenate([xy, np.zeros((len(xy), 1), np.int64)], 1)
    states = _random_states(np.random.default_rng(seed), len(coords), d)
    return coords, states, {"blob_side": side, "blobs": blobs, "cells": int(len(coords)),
                            "coverage_pct": 100.0 * len(coords) / (grid * grid)}


def dense_from_cells(grid: int, d: int, coords: Any, states: Any) -> Any:
    import numpy as np
    f = np.zeros((grid, grid, d), np.complex64)
    f[coords[:, 1], coords[:, 0]] = states
    return f


# --------------------------------------------------------------------------- runners


class Runner:
    """One engine of a workload: step(), active(), evaluated(), field()."""

    impl = "native"

    def __init__(self, name: str, model: str) -> None:
        self.name = name
        self.model = model
        self.setup_rss_delta: Optional[int] = None
        self.stored_cells: Optional[int] = None
        self.per_step: List[Dict[str, Any]] = []

    def step(self) -> None:
        raise NotImplementedError

    def active(self) -> Optional[int]:
        return None

    def evaluated(self) -> Optional[int]:
        return None

    def field(self) -> Any:
        raise NotImplementedError

    def step_count(self) -> int:
        raise NotImplementedError


class DenseRunner(Runner):
    def __init__(self, name: str, model: str, eng: Any) -> None:
        super().__init__(name, model)
        self.eng = eng
        self.cells = eng.grid_size * eng.grid_size

    def step(self) -> None:
        self.eng.step()

    def active(self) -> int:
        return self.cells

    def evaluated(self) -> int:
        return self.cells

    def field(self) -> Any:
        return self.eng.get_state()

    def step_count(self) -> int:
        return int(self.eng.get_step_count())


class SparseRunner(Runner):
    def __init__(self, name: str, model: str, eng: Any, window: Optional[int]) -> None:
        super().__init__(name, model)
        self.eng = eng
        self.window = window

    def step(self) -> None:
        self.eng.step_native()

    def active(self) -> int:
        return int(self.eng.get_matter_count())

    def evaluated(self) -> Optional[int]:
        s = _stats(self.eng)
        return None if s is None else int(s.get("evaluated", 0))

    def field(self) -> Any:
        return self.eng.to_dense((0, 0, self.window, self.window))

    def step_count(self) -> int:
        return int(self.eng.get_step_count())


class MotorRunner(Runner):
    impl = "python"

    def __init__(self, name: str, model: str, motor: Any, active_from: Optional[Runner] = None) -> None:
        super().__init__(name, model)
        self.motor = motor
        self.cells = motor.grid_size * motor.grid_size
        self.active_from = active_from

    def step(self) -> None:
        self.motor.evolve_internal_state()

    def active(self) -> int:
        # on a sparse workload, the matter the native engine holds at the same step (same field)
        return self.active_from.active() if self.active_from is not None else self.cells

    def evaluated(self) -> int:
        return self.cells

    def field(self) -> Any:
        return self.motor.get_dense_state()

    def step_count(self) -> int:
        return int(self.motor.get_step_count())


def run_lockstep(runners: List[Runner], warmup: int, steps: int) -> None:
    """warmup + steps steps of every runner, interleaved (order rotated each step); fills per_step."""
    n = len(runners)
    for i in range(warmup + steps):
        k = i % n
        for r in runners[k:] + runners[:k]:
            a0 = r.active()
            c0 = time.process_time()
            t0 = time.perf_counter()
            r.step()
            dt = time.perf_counter() - t0
            dc = time.process_time() - c0
            if i >= warmup:
                r.per_step.append({"step": r.step_count(), "ms": dt * 1e3, "cpu_ms": dc * 1e3, "active": a0,
                                   "evaluated": r.evaluated(), "matter_after": r.active()})


def summarize(r: Runner) -> Dict[str, Any]:
    ms = [s["ms"] for s in r.per_step]
    med = _median(ms)
    act = [s["active"] / s["ms"] * 1e3 for s in r.per_step if s["active"] and s["ms"] > 0]
    ev = [s["evaluated"] / s["ms"] * 1e3 for s in r.per_step if s["evaluated"] and s["ms"] > 0]
    out = {
        "engine": r.name, "impl": r.impl, "model": r.model, "steps_timed": len(ms),
        "ms_median": med, "ms_min": min(ms) if ms else None, "ms_max": max(ms) if ms else None,
        "cpu_ms_median": _median([s["cpu_ms"] for s in r.per_step]),
        "steps_per_s": (1e3 / med) if med else None,
        "active_cells": _median([s["active"] for s in r.per_step if s["active"] is not None]),
        "evaluated_cells": _median([s["evaluated"] for s in r.per_step if s["evaluated"] is not None]),
        "active_cells_per_s": _median(act), "evaluated_cells_per_s": _median(ev),
        "setup_rss_delta_bytes": r.setup_rss_delta,
        "stored_cells": r.stored_cells,
        "bytes_per_stored_cell": (r.setup_rss_delta / r.stored_cells
                                  if r.setup_rss_delta is not None and r.stored_cells else None),
        "per_step": r.per_step,
    }
    return out


def compare(a: Runner, b: Runner, exact: bool, note: str = "") -> Dict[str, Any]:
    import numpy as np
    fa, fb = np.asarray(a.field()), np.asarray(b.field())
    res: Dict[str, Any] = {"engine": a.name, "reference": b.name, "exact": exact, "note": note,
                           "steps": [a.step_count(), b.step_count()]}
    if fa.shape != fb.shape:
        res.update(max_abs_diff=None, error=f"shape {fa.shape} != {fb.shape}")
        return res
    if a.step_count() != b.step_count():
        res["error"] = f"step counts differ: {a.step_count()} != {b.step_count()}"
    diff = np.abs(fa.astype(np.complex128) - fb.astype(np.complex128))
    res["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    res["max_abs_ref"] = float(np.abs(fb).max()) if fb.size else 0.0
    res["ok"] = bool(res["max_abs_diff"] <= EXACT_TOL) if exact else None
    return res


def _timeit(fn: Callable[[], Any], reps: int) -> Tuple[float, List[float]]:
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(ts)), ts


# --------------------------------------------------------------------------- workloads


def load_torchscript(engine: Any, ts_path: str) -> None:
    """engine.load_model(ts_path) forced onto the TorchScript forward (LibTorch shim or Python).

    By default load_model runs LOCAL_CONV files as the built-in C conv stack; the
    TorchScript rows measure the TorchScript forward itself, and the 'builtin
    ConvModel' rows what load_model picks for such files."""
    before = os.environ.get("ATHERIA_NATIVE_CONV")
    os.environ["ATHERIA_NATIVE_CONV"] = "0"
    try:
        if not engine.load_model(ts_path):
            raise RuntimeError(f"{type(engine).__name__}.load_model failed: {engine.get_last_error()}")
    finally:
        if before is None:
            del os.environ["ATHERIA_NATIVE_CONV"]
        else:
            os.environ["ATHERIA_NATIVE_CONV"] = before


def wl_dense(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import atheria_core as ac
    from atheria_core.motor import AetheriaMotor
    d, g = p["d_state"], p["grid"]
    model, ts_path, minfo = ctx.model(p["model"], d)
    runners: List[Runner] = []
    motor = AetheriaMotor(model, g, d, seed=SEED)
    psi0 = motor.get_dense_state()

    r0 = rss_now()
    de = ac.DenseEngine(g, d, seed=SEED)
    load_torchscript(de, ts_path)
    de.set_state(psi0)
    rn = DenseRunner("native_dense_torchscript", "torchscript", de)
    rn.setup_rss_delta = rss_now() - r0
    runners.append(rn)
    if p["model"] == "local":
        r0 = rss_now()
        dc = ac.DenseEngine(g, d, seed=SEED)
        dc.set_model(ac.ConvModel(**model.conv_model_spec()))
        dc.set_state(psi0)
        rc = DenseRunner("native_dense_conv", "builtin ConvModel", dc)
        rc.setup_rss_delta = rss_now() - r0
        runners.append(rc)
    rm = MotorRunner("python_motor", "eager torch", motor)
    runners.append(rm)
    init = [compare(r, rm, True, "initial field") for r in runners[:-1]]
    run_lockstep(runners, p["warmup"], p["steps"])
    comps = [compare(r, rm, True) for r in runners[:-1]]
    return {"engines": [summarize(r) for r in runners], "comparisons": comps,
            "extra": {"model": minfo, "initial": init, "torch_route": ac.has_torch_shim()}}


def _sparse_engine(ac: Any, d: int, grid: int, patch: int, ts_path: Optional[str], conv: Optional[Dict[str, Any]],
                   coords: Any, states: Any) -> Tuple[Any, int]:
    r0 = rss_now()
    e = ac.Engine(d, grid_size=grid, background="zero", extent="zero", threshold=0.0, patch=patch, seed=SEED)
    if ts_path is not None:
        load_torchscript(e, ts_path)
    else:
        e.set_model(ac.ConvModel(**conv))
    e.add_particles(coords, states)
    return e, rss_now() - r0


def wl_sparse(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import atheria_core as ac
    from atheria_core.motor import AetheriaMotor
    d, g = p["d_state"], p["grid"]
    model, ts_path, minfo = ctx.model("local", d)
    patch = 2 * int(model.receptive_radius) + 1
    coords, states, binfo = make_blobs(g, p["pct"], p["blobs"], d)
    field0 = dense_from_cells(g, d, coords, states)
    spec = model.conv_model_spec()

    runners: List[Runner] = []
    for name, mname, ts, cv in (("native_sparse_torchscript", "torchscript", ts_path, None),
                                ("native_sparse_conv", "builtin ConvModel", None, spec)):
        e, delta = _sparse_engine(ac, d, g, patch, ts, cv, coords, states)
        r = SparseRunner(name, mname, e, g)
        r.setup_rss_delta, r.stored_cells = delta, int(e.get_matter_count())
        runners.append(r)
    r0 = rss_now()
    motor = AetheriaMotor(model, g, d, initial_state_mode="zeros", seed=SEED)
    motor.set_state(field0)
    rm = MotorRunner("python_motor_full_window", "eager torch", motor, active_from=runners[0])
    rm.setup_rss_delta = rss_now() - r0
    runners.append(rm)
    init = [compare(r, rm, True, "initial field") for r in runners[:-1]]
    run_lockstep(runners, p["warmup"], p["steps"])
    comps = [compare(r, rm, True, "to_dense(window) vs dense field") for r in runners[:-1]]
    comps.append(compare(runners[0], runners[1], True, "TorchScript vs ConvModel"))
    extra: Dict[str, Any] = {"model": minfo, "blobs": binfo, "patch": patch, "initial": init,
                             "torch_route": ac.has_torch_shim()}
    for r in runners[:-1]:
        med, _ = _timeit(lambda r=r: r.eng.to_dense((0, 0, g, g)), 5)
        extra[f"to_dense_ms_{r.name}"] = med
        extra[f"matter_end_{r.name}"] = r.active()
    return {"engines": [summarize(r) for r in runners], "comparisons": comps, "extra": extra}


def wl_vacuum(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import numpy as np
    import atheria_core as ac
    d = p["d_state"]
    model, ts_path, minfo = ctx.model("local", d)
    patch = 2 * int(model.receptive_radius) + 1
    s = p["seed_side"]
    ys, xs = np.mgrid[-(s // 2):s - s // 2, -(s // 2):s - s // 2]
    coords = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size, np.int64)], 1).astype(np.int64)
    states = _random_states(np.random.default_rng(SEED), len(coords), d)
    runners: List[Runner] = []
    for name, mname in (("native_sparse_torchscript", "torchscript"), ("native_sparse_conv", "builtin ConvModel")):
        r0 = rss_now()
        e = ac.Engine(d, background="vacuum", extent=None, patch=patch, seed=SEED)
        if mname == "torchscript":
            load_torchscript(e, ts_path)
        else:
            e.set_model(ac.ConvModel(**model.conv_model_spec()))
        e.add_particles(coords, states)
        r = SparseRunner(name, mname, e, None)
        r.setup_rss_delta, r.stored_cells = rss_now() - r0, len(coords)
        runners.append(r)
    run_lockstep(runners, p["warmup"], p["steps"])
    # TorchScript vs ConvModel on the same universe (cross-check, not against the reference engine)
    (c1, s1), (c2, s2) = runners[0].eng.matter(), runners[1].eng.matter()
    comp: Dict[str, Any] = {"engine": runners[0].name, "reference": runners[1].name, "exact": False,
                            "note": "TorchScript vs ConvModel (matter); no Python reference for a vacuum universe",
                            "steps": [runners[0].step_count(), runners[1].step_count()]}
    if c1.shape == c2.shape:
        o1, o2 = np.lexsort(c1.T[::-1]), np.lexsort(c2.T[::-1])
        if np.array_equal(c1[o1], c2[o2]):
            comp["max_abs_diff"] = float(np.abs(s1[o1].astype(np.complex128) - s2[o2]).max()) if len(c1) else 0.0
        else:
            comp.update(max_abs_diff=None, error="matter coordinates differ")
    else:
        comp.update(max_abs_diff=None, error=f"matter counts differ: {len(c1)} != {len(c2)}")
    extra: Dict[str, Any] = {"model": minfo, "patch": patch, "seed_cells": len(coords)}
    for r in runners:
        xs_ = np.array([st["active"] for st in r.per_step], float)
        ys_ = np.array([st["ms"] for st in r.per_step], float)
        if len(xs_) >= 3 and np.ptp(xs_) > 0:
            slope, icpt = np.polyfit(xs_, ys_, 1)
            extra[f"fit_{r.name}"] = {"ms_per_1k_active": float(slope * 1e3), "ms_intercept": float(icpt),
                                      "us_per_active_cell": float(slope * 1e3)}
    return {"engines": [summarize(r) for r in runners], "comparisons": [comp], "extra": extra}


def wl_to_dense(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import numpy as np
    import atheria_core as ac
    from atheria_core.motor import AetheriaMotor, harmonic_vacuum
    d, g, reps = p["d_state"], p["grid"], p["reps"]
    coords, states, binfo = make_blobs(g, p["pct"], p["blobs"], d)
    expect_zero = dense_from_cells(g, d, coords, states)
    expect_vac = harmonic_vacuum(d, (0, 0, g, g), 0, seed=SEED)
    expect_vac[coords[:, 1], coords[:, 0]] = states
    engines, comps = [], []
    for bg, expect in (("zero", expect_zero), ("vacuum", expect_vac)):
        e = ac.Engine(d, grid_size=g, background=bg, extent="zero", threshold=0.0, seed=SEED)
        e.add_particles(coords, states)
        med, ts = _timeit(lambda e=e: e.to_dense((0, 0, g, g)), reps)
        out = e.to_dense((0, 0, g, g))
        name = f"native_to_dense_{bg}_background"
        engines.append({"engine": name, "impl": "native", "model": "-", "steps_timed": reps, "ms_median": med,
                        "ms_min": min(ts), "ms_max": max(ts), "steps_per_s": 1e3 / med if med else None,
                        "active_cells": len(coords), "evaluated_cells": g * g,
                        "active_cells_per_s": None, "evaluated_cells_per_s": g * g / med * 1e3 if med else None,
                        "setup_rss_delta_bytes": None, "stored_cells": len(coords),
                        "bytes_per_stored_cell": None, "per_step": [], "what": "to_dense of the window",
                        "samples_ms": ts})
        diff = float(np.abs(out.astype(np.complex128) - expect).max())
        comps.append({"engine": name, "reference": "numpy field (motor.harmonic_vacuum for vacuum)",
                      "exact": True, "max_abs_diff": diff, "ok": diff <= EXACT_TOL, "steps": [0, 0],
                      "note": "to_dense vs expected field"})
    motor = AetheriaMotor(None, g, d, initial_state_mode="zeros")
    motor.set_state(expect_zero)
    med, ts = _timeit(motor.get_dense_state, reps)
    engines.append({"engine": "python_motor_get_dense_state", "impl": "python", "model": "-", "steps_timed": reps,
                    "ms_median": med, "ms_min": min(ts), "ms_max": max(ts), "steps_per_s": 1e3 / med if med else None,
                    "active_cells": len(coords), "evaluated_cells": g * g, "active_cells_per_s": None,
                    "evaluated_cells_per_s": g * g / med * 1e3 if med else None, "setup_rss_delta_bytes": None,
                    "stored_cells": None, "bytes_per_stored_cell": None, "per_step": [],
                    "what": "copy of the dense field (reference)", "samples_ms": ts})
    return {"engines": engines, "comparisons": comps, "extra": {"blobs": binfo}}


def wl_overhead_sparse(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import gc
    import numpy as np
    import atheria_core as ac
    d, n = p["d_state"], p["cells"]
    side = int(math.ceil(math.sqrt(n)))
    idx = np.arange(n, dtype=np.int64)
    coords = np.stack([idx % side, idx // side, np.zeros(n, np.int64)], 1)
    states = _random_states(np.random.default_rng(SEED), n, d)
    expect = (states.astype(np.complex128)
              / (np.linalg.norm(states.astype(np.complex128), axis=1, keepdims=True) + 1e-9))
    gc.collect()
    r0 = rss_now()
    e = ac.Engine(d, background="zero", extent=None, patch=p["patch"], seed=SEED)
    e.set_model(ac.ZeroModel())
    r1 = rss_now()
    e.add_particles(coords, states)
    r2 = rss_now()
    r = SparseRunner("native_sparse_zero_model", "builtin ZeroModel", e, None)
    r.setup_rss_delta, r.stored_cells = r2 - r0, n
    run_lockstep([r], p["warmup"], p["steps"])
    gc.collect()
    r3 = rss_now()
    got = e.get_states(coords)
    diff = float(np.abs(got.astype(np.complex128) - expect).max())
    comp = {"engine": r.name, "reference": "analytic (ZeroModel: psi/(|psi|+1e-9))", "exact": True,
            "max_abs_diff": diff, "ok": diff <= EXACT_TOL and e.get_matter_count() == n,
            "steps": [r.step_count(), r.step_count()], "matter_count": int(e.get_matter_count()),
            "note": "states after the steps vs expectation; matter count must stay N"}
    if e.get_matter_count() != n:
        comp["error"] = f"matter count {e.get_matter_count()} != {n}"
    summ = summarize(r)
    summ["bytes_per_stored_cell_after_steps"] = (r3 - r0) / n
    summ["bytes_per_stored_cell_insert_only"] = (r2 - r1) / n
    summ["bytes_per_stored_cell"] = (r3 - r0) / n
    summ["rss_bytes"] = {"before": r0, "engine_created": r1, "after_insert": r2, "after_steps": r3}
    # the engine's own figure (heap capacities of its map and cached step scratch), next to the RSS one
    st = _stats(e) or {}
    if st.get("memory_bytes") is not None:
        summ["engine_memory_bytes"] = {k: st.get(k) for k in ("matter_bytes", "scratch_bytes", "memory_bytes")}
        summ["engine_bytes_per_stored_cell"] = st["memory_bytes"] / n
        summ["engine_matter_bytes_per_stored_cell"] = st["matter_bytes"] / n
    t_md, _ = _timeit(e.matter, 3)
    return {"engines": [summ], "comparisons": [comp],
            "extra": {"square_side": side, "target_bytes_per_cell": 2 * (8 * d + 24), "matter_ms": t_md}}


def wl_overhead_dense(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import atheria_core as ac
    from atheria_core.motor import AetheriaMotor
    d, g = p["d_state"], p["grid"]
    motor = AetheriaMotor(None, g, d, seed=SEED)
    r0 = rss_now()
    de = ac.DenseEngine(g, d, seed=SEED)
    de.set_model(ac.ZeroModel())
    de.set_state(motor.get_dense_state())
    rn = DenseRunner("native_dense_zero_model", "builtin ZeroModel", de)
    rn.setup_rss_delta = rss_now() - r0
    rm = MotorRunner("python_motor", "None (delta = 0)", motor)
    run_lockstep([rn, rm], p["warmup"], p["steps"])
    return {"engines": [summarize(rn), summarize(rm)], "comparisons": [compare(rn, rm, True)], "extra": {}}


WORKLOADS: Dict[str, Callable[[Dict[str, Any], Ctx], Dict[str, Any]]] = {
    "dense": wl_dense, "sparse": wl_sparse, "vacuum": wl_vacuum, "to_dense": wl_to_dense,
    "overhead_sparse": wl_overhead_sparse, "overhead_dense": wl_overhead_dense,
}


# =========================================================================== worker process


def build_identity() -> Dict[str, Any]:
    """Path, size, mtime and SHA-256 prefix of the compiled modules in use (the engines are rebuilt
    while being optimised: this says which build a number belongs to)."""
    import importlib.util
    out: Dict[str, Any] = {}
    for mod in ("atheria_core._core", "atheria_core._torch_shim"):  # the shim is a plain shared object
        try:
            spec = importlib.util.find_spec(mod)
            path = spec.origin if spec is not None else None
            if not path or not os.path.isfile(path):
                continue
            st = os.stat(path)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()[:16]
            out[mod.rsplit(".", 1)[1]] = {
                "path": path, "size": st.st_size, "sha256_16": digest,
                "mtime": _dt.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")}
        except Exception as exc:  # noqa: BLE001 - informational only
            out[mod.rsplit(".", 1)[1]] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _machine_info(threads: int) -> Dict[str, Any]:
    import numpy as np
    import torch
    import atheria_core as ac
    info: Dict[str, Any] = {
        "platform": platform.platform(), "machine": platform.machine(), "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__, "torch": torch.__version__,
        "atheria_core": ac.__version__, "backend": ac.BACKEND, "backend_reason": ac.BACKEND_REASON,
        "has_torch_shim": ac.has_torch_shim(), "has_openmp": ac.has_openmp(),
        "threads_requested": threads, "atheria_max_threads": ac.get_max_threads(),
        "torch_num_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "build": build_identity(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                                                     "GOMP_SPINCOUNT", "OMP_PROC_BIND", "ATHERIA_FORCE_PYTHON")},
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["mem_total_kib"] = int(line.split()[1])
                    break
    except OSError:
        pass
    return info


def worker_main(threads: int, models_dir: str, demo_root: str) -> int:
    """Reads one JSON request per line on stdin, writes RESULT_TAG + JSON per request on stdout."""
    if PY_DIR not in sys.path:
        sys.path.insert(0, PY_DIR)
    import torch
    import atheria_core as ac
    ac.set_num_threads(threads)
    torch.set_num_threads(threads)
    ctx = Ctx(models_dir, demo_root, threads)
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("cmd") == "info":
            res: Dict[str, Any] = {"info": _machine_info(threads)}
        else:
            res = run_workload(req["workload"], ctx)
        out.write(RESULT_TAG + json.dumps(res, default=_json_default) + "\n")
        out.flush()
    return 0


def _json_default(o: Any) -> Any:
    try:
        import numpy as np
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def run_workload(spec: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import gc
    gc.collect()
    res: Dict[str, Any] = dict(spec)
    res["loadavg_start"] = os.getloadavg()
    base = rss_now()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res.update(WORKLOADS[spec["kind"]](spec["params"], ctx))
            res["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported as an error row
            res["status"] = "error"
            res["error"] = f"{type(exc).__name__}: {exc}"
            res["traceback"] = traceback.format_exc()
    res["wall_s"] = time.perf_counter() - t0
    res["loadavg_end"] = os.getloadavg()
    res["build"] = {k: v.get("sha256_16") for k, v in build_identity().items()}
    peak = rss_peak()
    res["rss"] = {"baseline_bytes": base, "peak_bytes": peak, "peak_delta_bytes": max(0, peak - base),
                  "end_bytes": rss_now()}
    msgs: List[str] = []
    for w in caught:
        m = f"{w.category.__name__}: {w.message}"
        if m not in msgs:
            msgs.append(m)
    res["warnings"] = msgs[:20]
    return res


# =========================================================================== parent


class Worker:
    """A benchmark worker subprocess (stdin/stdout JSON lines, stderr to a temp file)."""

    def __init__(self, args: argparse.Namespace, models_dir: str) -> None:
        self.err = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, os.path.abspath(__file__), "--_worker", "--threads", str(args.threads),
               "--_models", models_dir, "--demo-root", args.demo_root]
        env = dict(os.environ)
        env["PYTHONPATH"] = PY_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        if args.omp_wait_policy != "inherit":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, bufsize=1, env=env, cwd=ROOT)
        self.runs = 0
        self.buf = ""

    def request(self, req: Dict[str, Any], timeout: float) -> Tuple[Optional[Dict[str, Any]], str]:
        """(result, '') or (None, reason) when the worker died or timed out (it is then killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            return None, f"worker not accepting requests ({exc}); {self._died()}"
        self.runs += 1
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                if line.startswith(RESULT_TAG):
                    return json.loads(line[len(RESULT_TAG):]), ""
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return None, f"timed out after {timeout:.0f} s (worker killed)"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16).decode(errors="replace")
                if not chunk:
                    return None, self._died()
                self.buf += chunk

    def _died(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        how = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
        return f"worker {how}; stderr tail:\n{self.stderr_tail()}"

    def stderr_tail(self, n: int = 3000) -> str:
        try:
            self.err.flush()
            self.err.seek(0)
            return self.err.read()[-n:]
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.err.close()


def _fmt(v: Optional[float], spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _mib(b: Optional[float]) -> str:
    return "–" if b is None else f"{b / 2**20:.1f}"


def _si(v: Optional[float]) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


# --------------------------------------------------------------------------- targets


def _find(results: List[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    for r in results:
        if r["name"] == name and r.get("status") == "ok":
            return r
    return None


def _eng(r: Optional[Dict[str, Any]], engine: str) -> Optional[Dict[str, Any]]:
    if r is None:
        return None
    for e in r.get("engines", []):
        if e["engine"] == engine:
            return e
    return None


def _comp(r: Optional[Dict[str, Any]], engine: str) -> Optional[Dict[str, Any]]:
    if r is None:
        return None
    for c in r.get("comparisons", []):
        if c["engine"] == engine and c.get("reference", "").startswith("python"):
            return c
    return None


def _target(name: str, measured: Optional[float], target: float, unit: str, higher_is_better: bool,
            detail: str = "", extra_ok: bool = True, extra_note: str = "") -> Dict[str, Any]:
    t: Dict[str, Any] = {"target": name, "measured": measured, "goal": target, "unit": unit,
                         "higher_is_better": higher_is_better, "detail": detail}
    if measured is None or not math.isfinite(measured):
        t.update(met=None, margin="not measured in this run")
        return t
    met = (measured >= target) if higher_is_better else (measured <= target)
    met = bool(met and extra_ok)
    if measured == 0 or target == 0:
        factor = float("inf")
    else:
        factor = measured / target if higher_is_better else target / measured
    if met:
        t["margin"] = f"met, {factor:.2f}x the target"
    else:
        t["margin"] = (f"missed: {factor:.2f}x of the target (needs {1 / factor:.2f}x)" if factor > 0
                       else "missed")
        if not extra_ok:
            t["margin"] += f"; {extra_note}"
    t.update(met=met, factor=factor)
    return t


def evaluate_targets(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    # 1. dense demo U-Net 128²: native time/step <= Python's
    r = _find(results, "dense_unet_128")
    n, py = _eng(r, "native_dense_torchscript"), _eng(r, "python_motor")
    ratio = (py["ms_median"] / n["ms_median"]) if n and py and n["ms_median"] else None
    out.append(_target("dense U-Net 128²: Python ms / native ms (native <= Python)", ratio, 1.0, "x", True,
                       f"native {_fmt(n and n['ms_median'])} ms vs Python {_fmt(py and py['ms_median'])} ms"))
    # 2. dense local 256²: native >= 2x faster
    r = _find(results, "dense_local_256")
    py = _eng(r, "python_motor")
    for en in ("native_dense_torchscript", "native_dense_conv"):
        n = _eng(r, en)
        ratio = (py["ms_median"] / n["ms_median"]) if n and py and n["ms_median"] else None
        out.append(_target(f"dense local 256² ({en}): speed-up vs Python", ratio, 2.0, "x", True,
                           f"native {_fmt(n and n['ms_median'])} ms vs Python {_fmt(py and py['ms_median'])} ms"))
    # 3. sparse 1% of 1024²: native >= 20x faster, identical results
    r = _find(results, "sparse_local_1pct_1024")
    py = _eng(r, "python_motor_full_window")
    for en in ("native_sparse_torchscript", "native_sparse_conv"):
        n = _eng(r, en)
        c = _comp(r, en)
        ratio = (py["ms_median"] / n["ms_median"]) if n and py and n["ms_median"] else None
        same = bool(c and c.get("max_abs_diff") is not None and c["max_abs_diff"] <= EXACT_TOL)
        out.append(_target(f"sparse 1% of 1024² ({en}): speed-up vs AetheriaMotor, identical", ratio, 20.0, "x",
                           True, f"native {_fmt(n and n['ms_median'])} ms vs Python {_fmt(py and py['ms_median'])} "
                           f"ms; max|Δψ| {_fmt(c and c.get('max_abs_diff'))}", same,
                           "results differ (max|Δψ| > 1e-4)"))
    # 4. engine overhead >= 5M active cells/s (sparse, ZeroModel, d=8) at 1e6 cells
    ov = [(_find(results, f"overhead_sparse_{k}"), k) for k in ("1e3", "1e4", "1e5", "1e6")]
    r = ov[-1][0]
    e = _eng(r, "native_sparse_zero_model")
    out.append(_target("engine overhead, sparse ZeroModel d=8, 1e6 active cells: active cells/s",
                       e and e["active_cells_per_s"], 5e6, "cells/s", True,
                       f"{_fmt(e and e['ms_median'])} ms/step"))
    # 5. scaling 1e3..1e6: cells/s within ±30 % (of the median over the sizes)
    rates = [(k, _eng(rr, "native_sparse_zero_model")) for rr, k in ov]
    vals = [(k, e["active_cells_per_s"]) for k, e in rates if e and e.get("active_cells_per_s")]
    if len(vals) == 4:
        med = statistics.median(v for _, v in vals)
        worst = max(abs(v / med - 1.0) for _, v in vals)
        t = _target("scaling 1e3..1e6 active cells: worst deviation of cells/s from their median", worst * 100,
                    30.0, "%", False, ", ".join(f"{k}: {_si(v)}/s" for k, v in vals))
    else:
        t = _target("scaling 1e3..1e6 active cells: worst deviation of cells/s from their median", None, 30.0,
                    "%", False)
    out.append(t)
    # 6. memory <= 2*(8*d+24) bytes per stored cell (d=8, 1e6 cells, RSS after steps)
    e = _eng(r, "native_sparse_zero_model")
    out.append(_target("memory per stored cell, sparse d=8, 1e6 cells (RSS growth after steps / cells)",
                       e and e.get("bytes_per_stored_cell"), 2 * (8 * 8 + 24), "B/cell", False,
                       f"insert only: {_fmt(e and e.get('bytes_per_stored_cell_insert_only'), '.1f')} B/cell; "
                       f"engine-reported: {_fmt(e and e.get('engine_bytes_per_stored_cell'), '.1f')} B/cell "
                       f"(map {_fmt(e and e.get('engine_matter_bytes_per_stored_cell'), '.1f')})"))
    # 7. to_dense 1024² window, 1 % matter <= 10 ms
    r = _find(results, "to_dense_1pct_1024")
    e = _eng(r, "native_to_dense_zero_background")
    out.append(_target("to_dense of the 1024² window with 1% matter (zero background)", e and e["ms_median"], 10.0,
                       "ms", False, f"vacuum background: {_fmt(_eng(r, 'native_to_dense_vacuum_background') and _eng(r, 'native_to_dense_vacuum_background')['ms_median'])} ms"))
    return out


# --------------------------------------------------------------------------- reports


def _row_speedup(r: Dict[str, Any], e: Dict[str, Any]) -> Optional[float]:
    if e["impl"] != "native" or not e.get("ms_median"):
        return None
    for o in r.get("engines", []):
        if o["impl"] == "python" and o.get("ms_median") and o.get("per_step"):
            return o["ms_median"] / e["ms_median"]
    return None


def write_markdown(path: str, meta: Dict[str, Any], results: List[Dict[str, Any]],
                   targets: List[Dict[str, Any]]) -> None:
    info = meta.get("machine", {})
    L: List[str] = []
    L.append("# atheria_core benchmark: native engines vs AetheriaMotor\n")
    L.append(f"- command: `{meta['command']}`")
    L.append(f"- date: {meta['date']}, wall {meta['wall_s']:.0f} s, quick={meta['quick']}, "
             f"isolation={meta['isolation']}")
    L.append(f"- machine: {info.get('cpu_model', '?')}, {info.get('cpu_count')} CPUs "
             f"(affinity {info.get('affinity')}), {_fmt((info.get('mem_total_kib') or 0) / 2**20, '.1f')} GiB, "
             f"{info.get('platform')}")
    L.append(f"- threads: requested {info.get('threads_requested')}, atheria {info.get('atheria_max_threads')}, "
             f"torch intra-op {info.get('torch_num_threads')}, inter-op {info.get('torch_interop_threads')}; "
             f"OpenMP {info.get('has_openmp')}")
    pol = (info.get("env") or {}).get("OMP_WAIT_POLICY")
    if pol != "passive":
        L.append(f"- **note**: OMP_WAIT_POLICY={pol}: on a loaded machine the timings of OpenMP code (engine and "
                 "torch) can be inflated by whole scheduler ticks; compare with `--omp-wait-policy passive`")
    loads = [r[k][0] for r in results for k in ("loadavg_start", "loadavg_end") if r.get(k)]
    L.append(f"- 1-min load average during the workloads: {_fmt(min(loads) if loads else None, '.2f')} .. "
             f"{_fmt(max(loads) if loads else None, '.2f')} (per workload in results.json); env "
             + ", ".join(f"{k}={v}" for k, v in (info.get("env") or {}).items() if v is not None))
    builds = sorted({json.dumps(r.get("build"), sort_keys=True) for r in results if r.get("build")})
    b = info.get("build") or {}
    L.append("- build: " + ", ".join(f"{k} sha256 {v.get('sha256_16')} (mtime {v.get('mtime')})" for k, v in b.items())
             + ("" if len(builds) <= 1 else f" — **WARNING: the extension changed during the run** "
                f"({len(builds)} builds; per workload in results.json)"))
    L.append(f"- versions: python {info.get('python')}, torch {info.get('torch')}, numpy {info.get('numpy')}, "
             f"atheria_core {info.get('atheria_core')} (backend {info.get('backend')}, LibTorch shim "
             f"{info.get('has_torch_shim')})")
    L.append("- ms/step: median wall time over the timed steps (after warm-up), engines interleaved step by step; "
             "CPU ms/step: process CPU time (all threads) during the step. "
             "*active* = matter cells at the start of the step (dense: grid cells); *evaluated* = cells the step "
             "computed (sparse: matter + patch neighbourhood, from Engine.stats(); dense and AetheriaMotor: the "
             "grid). RSS Δ = current-RSS growth (/proc/self/statm) from creating the engine and loading its field; "
             "B/cell = that growth / stored cells (overhead_sparse: after the steps; shown from 1e5 stored cells). Peak = getrusage ru_maxrss "
             "minus the worker's RSS before the workload (per workload with --isolation process). max|Δψ| vs the "
             "reference after the same steps; ✓ = exact comparison within 1e-4.\n")
    L.append("## Results\n")
    L.append("| workload | engine | model | active cells | evaluated cells | ms/step | CPU ms/step | steps/s "
             "| active cells/s | evaluated cells/s | RSS Δ MiB | B/cell | peak Δ MiB | max\\|Δψ\\| (vs) | speed-up vs Python |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.get("status") != "ok":
            err = (r.get("error") or "error").replace("|", "\\|").replace("\n", " ")[:200]
            L.append(f"| {r['name']} | **ERROR** | {err} | | | | | | | | | | | | |")
            continue
        peak = _mib(r.get("rss", {}).get("peak_delta_bytes"))
        for e in r["engines"]:
            comps = [c for c in r.get("comparisons", []) if c["engine"] == e["engine"]]
            cs = []
            for c in comps:
                mark = "" if not c.get("exact") else (" ✓" if c.get("ok") else " ✗")
                ref = c.get("reference", "")
                cs.append(f"{_fmt(c.get('max_abs_diff'), '.2e')}{mark} ({ref})")
            L.append("| " + " | ".join([
                r["name"], e["engine"], e.get("model", ""), _si(e.get("active_cells")),
                _si(e.get("evaluated_cells")), _fmt(e.get("ms_median"), ".4g"), _fmt(e.get("cpu_ms_median"), ".4g"),
                _fmt(e.get("steps_per_s"), ".3g"),
                _si(e.get("active_cells_per_s")), _si(e.get("evaluated_cells_per_s")),
                _mib(e.get("setup_rss_delta_bytes")),
                _fmt(e.get("bytes_per_stored_cell") if (e.get("stored_cells") or 0) >= MIN_CELLS_FOR_BPC else None,
                     ".0f"), peak,
                "; ".join(cs) or "–", _fmt(_row_speedup(r, e), ".2f")]) + " |")
    L.append("")
    L.append("## Targets (this machine)\n")
    L.append("| target | measured | goal | met | margin | detail |")
    L.append("|---|---|---|---|---|---|")
    for t in targets:
        met = {True: "yes", False: "**no**", None: "n/a"}[t.get("met")]
        L.append(f"| {t['target']} | {_fmt(t.get('measured'), '.3g')} {t['unit']} | "
                 f"{'≥' if t['higher_is_better'] else '≤'} {_fmt(t['goal'], '.3g')} {t['unit']} | {met} | "
                 f"{t.get('margin', '')} | {t.get('detail', '')} |")
    L.append("")
    extras = [r for r in results if r.get("status") == "ok" and r["kind"] in ("sparse", "vacuum")]
    if extras:
        L.append("## Sparse details\n")
        for r in extras:
            ex = r.get("extra", {})
            bits = [f"{k} = {_fmt(v, '.4g') if isinstance(v, float) else v}" for k, v in ex.items()
                    if k.startswith(("to_dense_ms", "matter_end", "fit_", "patch", "seed_cells"))]
            L.append(f"- **{r['name']}**: " + "; ".join(bits))
            if r["kind"] == "vacuum":
                for e in r["engines"]:
                    ps = e.get("per_step", [])
                    pick = ps[:: max(1, len(ps) // 8)] + ps[-1:] if ps else []
                    L.append(f"  - {e['engine']} per step (active → ms): "
                             + ", ".join(f"{s['active']}→{s['ms']:.1f}" for s in pick))
        L.append("")
    warn = [(r["name"], w) for r in results for w in r.get("warnings", [])]
    if warn:
        L.append("## Warnings raised during workloads\n")
        for n_, w in warn:
            L.append(f"- {n_}: {w}")
        L.append("")
    errs = [r for r in results if r.get("status") != "ok"]
    if errs:
        L.append("## Errors\n")
        for r in errs:
            L.append(f"### {r['name']}\n\n```\n{(r.get('traceback') or r.get('error') or '')[-3000:]}\n```\n")
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")


def write_plot(path: str, results: List[Dict[str, Any]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2))
    ok = [r for r in results if r.get("status") == "ok"]
    # left: sparse time/step vs active cells
    ov = [(_eng(r, "native_sparse_zero_model")) for r in ok if r["kind"] == "overhead_sparse"]
    ov = sorted([e for e in ov if e and e.get("active_cells")], key=lambda e: e["active_cells"])
    if ov:
        ax.plot([e["active_cells"] for e in ov], [e["ms_median"] for e in ov], "o-", label="sparse, ZeroModel (d=8)")
        xs = [ov[0]["active_cells"], ov[-1]["active_cells"]]
        ax.plot(xs, [x / 5e6 * 1e3 for x in xs], "k:", lw=1, label="5 M cells/s (target)")
    styles = {"native_sparse_torchscript": ("s", "C1"), "native_sparse_conv": ("^", "C2"),
              "python_motor_full_window": ("x", "C3")}
    for ename, (mk, col) in styles.items():
        pts = [(e["active_cells"], e["ms_median"]) for r in ok if r["kind"] == "sparse"
               for e in [_eng(r, ename)] if e and e.get("active_cells")]
        if pts:
            pts.sort()
            ax.plot(*zip(*pts), mk + "--", color=col, label=f"{ename} (local net, 1024² window)")
    for r in ok:
        if r["kind"] != "vacuum":
            continue
        for e, col in zip(r["engines"], ("C4", "C5")):
            ps = e.get("per_step", [])
            if ps:
                ax.plot([s["active"] for s in ps], [s["ms"] for s in ps], ".", color=col, ms=4,
                        label=f"{e['engine']} (vacuum growth, per step)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("active (matter) cells")
    ax.set_ylabel("ms / step (median)")
    ax.set_title("sparse Engine: time per step vs active cells")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    # right: dense engines vs grid cells
    series: Dict[str, List[Tuple[float, float]]] = {}
    for r in ok:
        if r["kind"] not in ("dense", "overhead_dense"):
            continue
        tag = {"dense": r["params"].get("model", ""), "overhead_dense": "zero"}[r["kind"]]
        for e in r["engines"]:
            if e.get("active_cells") and e.get("ms_median"):
                series.setdefault(f"{tag}: {e['engine']}", []).append((e["active_cells"], e["ms_median"]))
    for k, pts in sorted(series.items()):
        pts.sort()
        bx.plot(*zip(*pts), "o-" if "native" in k else "x--", label=k)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("grid cells (H·W)")
    bx.set_ylabel("ms / step (median)")
    bx.set_title("dense engines: time per step vs grid cells")
    bx.grid(True, which="both", alpha=0.3)
    if series:
        bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


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


if __name__ == "__main__":
    sys.exit(main())

"""The workload registry: name -> function(params, ctx) -> {engines, comparisons, extra}."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from .common import EXACT_TOL, SCATTER_SPACING, SEED, rss_now, _timeit
from .plugins import register_plugin_workloads
from .runners import PackedFloorRunner, Ctx, engine_stats, _random_states, make_blobs, dense_from_cells, Runner, DenseRunner, SparseRunner, MotorRunner, run_lockstep, summarize, compare, load_torchscript

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


def _overhead_coords(n: int, layout: str) -> Any:
    """(n, 3) int64 coords: 'compact' fills a square; 'scattered' puts every cell SCATTER_SPACING
    cells from its neighbours (isolated cells: no two share a patch neighbourhood or a block)."""
    import numpy as np
    side = int(math.ceil(math.sqrt(n)))
    idx = np.arange(n, dtype=np.int64)
    step = 1 if layout == "compact" else SCATTER_SPACING
    return np.stack([(idx % side) * step, (idx // side) * step, np.zeros(n, np.int64)], 1), side


def wl_overhead_sparse(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import gc
    import numpy as np
    import atheria_core as ac
    d, n = p["d_state"], p["cells"]
    layout = p.get("layout", "compact")
    coords, side = _overhead_coords(n, layout)
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
    # the memory figure is the engine's steady state after steps, read before the floor (if any)
    # allocates anything: freed torch/numpy buffers stay in the process heap and would count
    for _ in range(2):
        e.step_native()
    gc.collect()
    r3 = rss_now()
    runners: List[Runner] = [r]
    floor = None
    if p.get("floor"):
        floor = PackedFloorRunner(states, threshold=0.01)
        runners.append(floor)
    run_lockstep(runners, p["warmup"], p["steps"])
    engines = [summarize(rr) for rr in runners]
    if floor is not None:
        floor.release()
    got = e.get_states(coords)
    diff = float(np.abs(got.astype(np.complex128) - expect).max())
    comp = {"engine": r.name, "reference": "analytic (ZeroModel: psi/(|psi|+1e-9))", "exact": True,
            "max_abs_diff": diff, "ok": diff <= EXACT_TOL and e.get_matter_count() == n,
            "steps": [r.step_count(), r.step_count()], "matter_count": int(e.get_matter_count()),
            "note": "states after the steps vs expectation; matter count must stay N"}
    if e.get_matter_count() != n:
        comp["error"] = f"matter count {e.get_matter_count()} != {n}"
    summ = engines[0]
    summ["bytes_per_stored_cell_after_steps"] = (r3 - r0) / n
    summ["bytes_per_stored_cell_insert_only"] = (r2 - r1) / n
    summ["bytes_per_stored_cell"] = (r3 - r0) / n
    summ["rss_bytes"] = {"before": r0, "engine_created": r1, "after_insert": r2, "after_steps": r3}
    # the engine's own figure (heap capacities of its map and step scratch), next to the RSS one
    st = engine_stats(e) or {}
    if st.get("memory_bytes") is not None:
        summ["engine_memory_bytes"] = {k: st.get(k) for k in ("matter_bytes", "scratch_bytes", "memory_bytes")}
        summ["engine_bytes_per_stored_cell"] = st["memory_bytes"] / n
        summ["engine_matter_bytes_per_stored_cell"] = st["matter_bytes"] / n
    t_md, _ = _timeit(e.matter, 3)
    extra: Dict[str, Any] = {"layout": layout, "square_side": side, "target_bytes_per_cell": 2 * (8 * d + 24),
                             "matter_ms": t_md}
    if floor is not None and floor.per_step and summ.get("ms_median"):
        extra["floor_ms_over_engine_ms"] = engines[1]["ms_median"] / summ["ms_median"]
    return {"engines": engines, "comparisons": [comp], "extra": extra}


def wl_scaling_sparse(p: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    """The sparse ZeroModel step at every size of p["sizes"] (compact squares, d_state 8), all in
    this process and stepped round-robin: each round gives every size about p["cells_per_round"]
    cells of work (k = that / n steps, timed together; at least one step), the size order rotated
    each round.  So every size sees the same machine: on this shared VM single-thread speed moves
    by ~1.4x between minutes, which separate workloads (minutes apart) read as a size effect.
    Each size's cells/s is the median over the rounds of n / (ms per step)."""
    import numpy as np
    import atheria_core as ac
    d = p["d_state"]
    runners: List[SparseRunner] = []
    expects = []
    for n in p["sizes"]:
        coords, _ = _overhead_coords(n, "compact")
        states = _random_states(np.random.default_rng(SEED), n, d)
        e = ac.Engine(d, background="zero", extent=None, patch=p["patch"], seed=SEED)
        e.set_model(ac.ZeroModel())
        e.add_particles(coords, states)
        r = SparseRunner(f"native_sparse_zero_model_{n:.0e}".replace("+0", ""), "builtin ZeroModel", e, None)
        r.stored_cells = n
        runners.append(r)
        idx = np.random.default_rng(SEED + 1).choice(n, min(n, 4096), replace=False)
        s64 = states[idx].astype(np.complex128)
        expects.append((coords[idx], s64 / (np.linalg.norm(s64, axis=1, keepdims=True) + 1e-9)))
    run_lockstep(runners, p["warmup"], p["rounds"],
                 turn=lambda r: max(1, int(round(p["cells_per_round"] / r.stored_cells))))
    engines = [summarize(r) for r in runners]
    comps = []
    for r, (cs, want) in zip(runners, expects):
        got = r.eng.get_states(cs).astype(np.complex128)
        diff = float(np.abs(got - want).max())
        count = int(r.eng.get_matter_count())
        c = {"engine": r.name, "reference": "analytic (ZeroModel: psi/(|psi|+1e-9))", "exact": True,
             "max_abs_diff": diff, "ok": diff <= EXACT_TOL and count == r.stored_cells,
             "steps": [r.step_count(), r.step_count()], "matter_count": count,
             "note": "4096 sampled cells after all the rounds vs expectation; matter count must stay N"}
        if count != r.stored_cells:
            c["error"] = f"matter count {count} != {r.stored_cells}"
        comps.append(c)
    per_round = []
    for j in range(p["rounds"]):
        rr = [r.stored_cells / r.per_step[j]["ms"] * 1e3 for r in runners]
        med = float(np.median(rr))
        per_round.append(max(abs(x / med - 1.0) for x in rr) * 100)
    extra = {"sizes": list(p["sizes"]), "rounds": p["rounds"], "cells_per_round": p["cells_per_round"],
             "worst_deviation_pct_per_round": per_round}
    return {"engines": engines, "comparisons": comps, "extra": extra}


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


#: The workload registry: kind -> function(params, ctx) -> {"engines", "comparisons", "extra"}.
WORKLOADS: Dict[str, Callable[[Dict[str, Any], Ctx], Dict[str, Any]]] = {
    "dense": wl_dense, "sparse": wl_sparse, "vacuum": wl_vacuum, "to_dense": wl_to_dense,
    "overhead_sparse": wl_overhead_sparse, "overhead_dense": wl_overhead_dense,
    "scaling_sparse": wl_scaling_sparse,
}
register_plugin_workloads(WORKLOADS)



"""The targets, as a data table, and their evaluation against one run's results."""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .common import EXACT_TOL
from .common import _comp, _eng, _find, _fmt, _si

Measure = Callable[[List[Dict[str, Any]]], Tuple[Optional[float], str, bool, str]]







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


def _ratio(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> Optional[float]:
    """a's ms / b's ms (how many times faster b is), or None."""
    if a and b and a.get("ms_median") and b.get("ms_median"):
        return a["ms_median"] / b["ms_median"]
    return None


def _ms(e: Optional[Dict[str, Any]]) -> str:
    return _fmt(e and e.get("ms_median"))


def t_speedup(workload: str, reference: str, engine: str, check_exact: bool = False) -> Measure:
    """reference ms / engine ms in one workload (lock-step, same run)."""
    def m(results: List[Dict[str, Any]]) -> Tuple[Optional[float], str, bool, str]:
        r = _find(results, workload)
        n, ref = _eng(r, engine), _eng(r, reference)
        detail = f"{engine} {_ms(n)} ms vs {reference} {_ms(ref)} ms"
        ok, note = True, ""
        if check_exact:
            c = _comp(r, engine)
            ok = bool(c and c.get("max_abs_diff") is not None and c["max_abs_diff"] <= EXACT_TOL)
            detail += f"; max|Δψ| {_fmt(c and c.get('max_abs_diff'))}"
            note = "results differ (max|Δψ| > 1e-4)"
        return _ratio(ref, n), detail, ok, note
    return m


def _worst_deviation(vals: Sequence[Tuple[str, float]]) -> float:
    med = statistics.median(v for _, v in vals)
    return max(abs(v / med - 1.0) for _, v in vals) * 100


def t_scaling(names: Sequence[str]) -> Measure:
    """Worst deviation (%) of the sparse ZeroModel cells/s from their median over the sizes,
    from the round-robin ``scaling_sparse`` workload (all sizes in one process, same machine
    state).  The detail also gives the same figure from the separate ``overhead_sparse_*``
    workloads, which run minutes apart."""
    def m(results: List[Dict[str, Any]]) -> Tuple[Optional[float], str, bool, str]:
        r = _find(results, "scaling_sparse")
        vals, sep = [], []
        for k in names:
            e = _eng(r, f"native_sparse_zero_model_{k}")
            if e and e.get("active_cells_per_s"):
                vals.append((k, e["active_cells_per_s"]))
            e = _eng(_find(results, f"overhead_sparse_{k}"), "native_sparse_zero_model")
            if e and e.get("active_cells_per_s"):
                sep.append((k, e["active_cells_per_s"]))
        if len(vals) != len(names):
            return None, "", True, ""
        detail = "round-robin in one process: " + ", ".join(f"{k}: {_si(v)}/s" for k, v in vals)
        if len(sep) == len(names):
            detail += (f"; separate workloads: worst {_worst_deviation(sep):.1f} % ("
                       + ", ".join(f"{k}: {_si(v)}/s" for k, v in sep) + ")")
        return _worst_deviation(vals), detail, True, ""
    return m


def t_bytes_per_cell(workload: str) -> Measure:
    """RSS growth after the steps / stored cells (the engine's own figure in the detail)."""
    def m(results: List[Dict[str, Any]]) -> Tuple[Optional[float], str, bool, str]:
        e = _eng(_find(results, workload), "native_sparse_zero_model")
        return (e and e.get("bytes_per_stored_cell"),
                f"insert only: {_fmt(e and e.get('bytes_per_stored_cell_insert_only'), '.1f')} B/cell; "
                f"engine-reported: {_fmt(e and e.get('engine_bytes_per_stored_cell'), '.1f')} B/cell "
                f"(map {_fmt(e and e.get('engine_matter_bytes_per_stored_cell'), '.1f')})", True, "")
    return m


def t_ms(workload: str, engine: str) -> Measure:
    def m(results: List[Dict[str, Any]]) -> Tuple[Optional[float], str, bool, str]:
        e = _eng(_find(results, workload), engine)
        return e and e.get("ms_median"), "", True, ""
    return m


#: The targets: (name, measure, goal, unit, higher_is_better).  A measure maps the run's results
#: to (measured value, detail, extra condition met, note when it is not).
TARGETS: List[Tuple[str, Measure, float, str, bool]] = [
    ("dense U-Net 128²: Python ms / native ms (native <= Python)",
     t_speedup("dense_unet_128", "python_motor", "native_dense_torchscript"), 1.0, "x", True),
    ("dense local 256² (native_dense_torchscript): speed-up vs Python",
     t_speedup("dense_local_256", "python_motor", "native_dense_torchscript"), 2.0, "x", True),
    ("dense local 256² (native_dense_conv): speed-up vs Python",
     t_speedup("dense_local_256", "python_motor", "native_dense_conv"), 2.0, "x", True),
    ("sparse 1% of 1024² (native_sparse_torchscript): speed-up vs AetheriaMotor, identical",
     t_speedup("sparse_local_1pct_1024", "python_motor_full_window", "native_sparse_torchscript", True), 20.0,
     "x", True),
    ("sparse 1% of 1024² (native_sparse_conv): speed-up vs AetheriaMotor (issue 9: >= 65x)",
     t_speedup("sparse_local_1pct_1024", "python_motor_full_window", "native_sparse_conv", True), 65.0, "x", True),
    ("sparse 0.1% of 1024² (native_sparse_conv): speed-up vs AetheriaMotor (issue 9: >= 110x)",
     t_speedup("sparse_local_0.1pct_1024", "python_motor_full_window", "native_sparse_conv", True), 110.0, "x",
     True),
    ("sparse ZeroModel d=8, 1e6 compact cells: packed-array floor ms / engine ms",
     t_speedup("overhead_sparse_1e6", "torch_packed_floor", "native_sparse_zero_model"), 1.5, "x", True),
    ("scaling 1e3..1e7 active cells (round-robin, one process): worst deviation of cells/s from their median",
     t_scaling(("1e3", "1e4", "1e5", "1e6", "1e7")), 30.0, "%", False),
    ("memory per stored cell, compact, d=8, 1e6 cells (RSS growth after steps / cells)",
     t_bytes_per_cell("overhead_sparse_1e6"), 80.0, "B/cell", False),
    ("memory per stored cell, scattered (1e5 isolated cells), d=8",
     t_bytes_per_cell("overhead_scattered_1e5"), 200.0, "B/cell", False),
    ("DenseEngine ZeroModel 1024² d=8: speed-up vs AetheriaMotor",
     t_speedup("overhead_dense_1024", "python_motor", "native_dense_zero_model"), 1.0, "x", True),
    ("to_dense of the 1024² window with 1% matter (zero background)",
     t_ms("to_dense_1pct_1024", "native_to_dense_zero_background"), 10.0, "ms", False),
]


def evaluate_targets(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every row of TARGETS against one run's results."""
    out: List[Dict[str, Any]] = []
    for name, measure, goal, unit, higher in TARGETS:
        value, detail, ok, note = measure(results)
        out.append(_target(name, value, goal, unit, higher, detail, ok, note))
    return out

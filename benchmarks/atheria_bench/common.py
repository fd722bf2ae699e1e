"""Constants and process helpers shared by the benchmark's parent and workers."""
from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
SCRIPT = os.path.join(HERE, "benchmark_native_vs_python.py")  # the CLI (workers re-run it)
ROOT = os.path.dirname(HERE)
PY_DIR = os.path.join(ROOT, "python")
RESULT_TAG = "@@ATHERIA_BENCH_RESULT "
EXACT_TOL = 1e-4
#: bytes per stored cell are shown in the table only from this many stored cells (page granularity)
MIN_CELLS_FOR_BPC = 100_000
GROUPS = ("dense", "sparse", "overhead")
#: cells between neighbours in the scattered-matter workload (isolated cells, far apart)
SCATTER_SPACING = 1000
SEED = 0
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

def _timeit(fn: Callable[[], Any], reps: int) -> Tuple[float, List[float]]:
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(ts)), ts


# --------------------------------------------------------------------------- workloads


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

"""The Markdown report and the time/step-vs-cells plot."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple

from .common import MIN_CELLS_FOR_BPC
from .common import _eng, _fmt, _mib, _si







# --------------------------------------------------------------------------- targets


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
    ov = [(_eng(r, "native_sparse_zero_model")) for r in ok
          if r["kind"] == "overhead_sparse" and r["params"].get("layout", "compact") == "compact"]
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


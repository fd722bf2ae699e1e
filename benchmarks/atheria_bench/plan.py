"""The plan: which workloads run, with which sizes (full or ``--quick``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .common import GROUPS
from .plugins import plugin_plan

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
    sparse_cells = (1_000, 10_000) if quick else (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
    for n in sparse_cells:
        # the packed-array floor runs next to the engine (lock-step) up to 1e6 cells (at 1e7 its
        # float64 temporaries alone need ~7 GB)
        plan.append(_spec(f"overhead_sparse_{n:.0e}".replace("+0", ""), "overhead", "overhead_sparse", cells=n,
                          d_state=8, patch=3, floor=n <= 1_000_000, warmup=wu(2 if n < 10_000_000 else 1),
                          steps=st(8 if n < 1_000_000 else (5 if n < 10_000_000 else 3))))
    # the same sizes again, all in one process, stepped round-robin (the scaling target)
    plan.append(_spec("scaling_sparse", "overhead", "scaling_sparse", sizes=sparse_cells, d_state=8, patch=3,
                      warmup=wu(2), rounds=st(12, 3), cells_per_round=2_000_000 if not quick else 20_000))
    n_sc = 2_000 if quick else 100_000
    plan.append(_spec(f"overhead_scattered_{n_sc:.0e}".replace("+0", ""), "overhead", "overhead_sparse",
                      cells=n_sc, layout="scattered", d_state=8, patch=3, warmup=wu(2), steps=st(8)))
    for g in ((64,) if quick else (256, 1024)):
        plan.append(_spec(f"overhead_dense_{g}", "overhead", "overhead_dense", grid=g, d_state=8,
                          warmup=wu(2), steps=st(8)))
    plan.extend(plugin_plan(quick, steps, warmup))
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


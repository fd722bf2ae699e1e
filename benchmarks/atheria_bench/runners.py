"""What workloads share: the worker context (models), engine runners stepped in lock-step,
summaries and comparisons, field builders."""
from __future__ import annotations

import hashlib
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .common import EXACT_TOL, SEED, _median

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


def engine_stats(engine: Any) -> Optional[Dict[str, int]]:
    """The engine's public ``stats()`` (last step's counters, the C engine's own memory), or None."""
    fn = getattr(engine, "stats", None)
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
        s = engine_stats(self.eng)
        return None if s is None else int(s.get("evaluated", 0))

    def field(self) -> Any:
        return self.eng.to_dense((0, 0, self.window, self.window))

    def step_count(self) -> int:
        return int(self.eng.get_step_count())


class PackedFloorRunner(Runner):
    """The packed-array floor: plain torch eager applying the update rule (ZeroModel delta, gamma 0,
    float64 like the C rule, the keep decision) to the matter packed as one (N, 2*d_state) float32
    array: no coordinates, no neighbourhood, no index.  What any engine must at least pay."""

    impl = "floor"

    def __init__(self, states: Any, threshold: float) -> None:
        import numpy as np
        import torch
        super().__init__("torch_packed_floor", "ZeroModel rule on a packed (N, 2d) array")
        self.d = int(states.shape[1])
        self.n = int(states.shape[0])
        self.x = torch.from_numpy(np.ascontiguousarray(
            np.concatenate([states.real, states.imag], axis=1).astype(np.float32)))
        # preallocated, in-place: the floor pays the arithmetic and the passes over the array,
        # not the allocator
        self.delta = torch.zeros_like(self.x)                 # the model's update (ZeroModel)
        self.q = torch.empty(self.x.shape, dtype=torch.float64)
        self.nrm = torch.empty((self.n, 1), dtype=torch.float64)
        self.keep = torch.empty(self.n, dtype=torch.bool)
        self.threshold = threshold
        self.steps = 0

    def step(self) -> None:
        import torch
        q, nrm = self.q, self.nrm
        q.copy_(self.x).add_(self.delta)                      # psi' = psi + delta (gamma 0), float64
        torch.linalg.vector_norm(q, dim=1, keepdim=True, out=nrm)
        torch.gt(nrm[:, 0], self.threshold, out=self.keep)    # the keep decision
        q.div_(nrm.add_(1e-9))
        self.x.copy_(q)                                       # one rounding to float32
        self.steps += 1

    def active(self) -> int:
        return self.n

    def evaluated(self) -> int:
        return self.n

    def field(self) -> Any:
        return self.x.numpy()

    def step_count(self) -> int:
        return self.steps

    def release(self) -> None:
        self.x = self.delta = self.q = self.nrm = self.keep = None


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


def run_lockstep(runners: List[Runner], warmup: int, steps: int,
                 turn: Optional[Callable[[Runner], int]] = None) -> None:
    """warmup + steps rounds of every runner, interleaved (order rotated each round); fills
    per_step.  A runner's turn is one step, or turn(runner) steps timed together (per_step then
    holds their mean, with "steps_in_turn")."""
    n = len(runners)
    for i in range(warmup + steps):
        j = i % n
        for r in runners[j:] + runners[:j]:
            k = turn(r) if turn is not None else 1
            a0 = r.active()
            c0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(k):
                r.step()
            dt = (time.perf_counter() - t0) / k
            dc = (time.process_time() - c0) / k
            if i >= warmup:
                rec = {"step": r.step_count(), "ms": dt * 1e3, "cpu_ms": dc * 1e3, "active": a0,
                       "evaluated": r.evaluated(), "matter_after": r.active()}
                if turn is not None:
                    rec["steps_in_turn"] = k
                r.per_step.append(rec)


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



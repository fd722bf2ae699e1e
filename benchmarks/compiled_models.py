#!/usr/bin/env python3
"""Compiled-model routes side by side: DenseEngine (TorchScript shim, AOTInductor .pt2, C conv stack)
against what a PyTorch user writes by hand (``torch.compile`` of AetheriaMotor's step, frozen
TorchScript stepped in a Python loop) and AetheriaMotor itself.

Everything runs in one process, in lock-step (each repetition steps every candidate once, in
turn), on the same trained demo model and the same initial field; the table reports median
ms/step and the ratio against each reference.  Compile times (AOTInductor package per grid size,
``torch.compile`` warm-up) are reported separately: they are paid once per shape and the
packages are cached next to the checkpoint.  The engine's own overhead around the forward is
measured separately: a DenseEngine step with the shim model minus the same model's forward
alone (``_core._model_forward``), and a DenseEngine step with the ZeroModel.

Equivalence: max |Δψ| between the DenseEngine (the route ``load_model`` picks) and
AetheriaMotor over 100 steps on every demo architecture at the demo grid size.

Public API only (plus the private ``_core._model_forward`` used to time the forward alone).
Usage::

    python benchmarks/compiled_models.py [--quick] [--out DIR] [--root DEMO_ROOT] [--threads 2]

``--quick``: 32² only, few repetitions, no AOTInductor compile (cached packages are used).
``--guide-unet``: also the U-Net the migration guide trains (``UNET_32ch_D5_LR2e-5``: hidden 32,
depth 5, d_state 4 as the demos), untrained (seeded random weights: its speed does not depend on
them), at the same grid sizes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

import atheria_core as ac  # noqa: E402  (before torch: OpenMP wait policy)
import torch  # noqa: E402
from atheria_core import _model_loader as loader  # noqa: E402
from atheria_core import experiments as exps  # noqa: E402
from atheria_core.export import export_model  # noqa: E402
from atheria_core.motor import AetheriaMotor, engine_rule  # noqa: E402

logger = logging.getLogger("compiled_models")
DEMOS = ("DEMO_UNET", "DEMO_UNET_UNITARY", "DEMO_UNET_CONVLSTM", "DEMO_LOCAL_CONV")
GUIDE_UNET = "UNET_32ch_D5_LR2e-5"


def write_guide_unet(root: str, grid: int) -> None:
    """The guide's U-Net as an experiment under root: config + one checkpoint of seeded weights."""
    from atheria_core.models import build_model
    params = {"d_state": 4, "hidden_channels": 32, "depth": 5}
    torch.manual_seed(0)
    model = build_model("UNET", params).eval()
    exps.save_experiment_config({
        "EXPERIMENT_NAME": GUIDE_UNET, "MODEL_ARCHITECTURE": "UNET", "MODEL_PARAMS": params,
        "GRID_SIZE_TRAINING": grid, "GRID_SIZE_INFERENCE": grid, "GAMMA_DECAY": 0.0,
        "INITIAL_STATE_MODE_INFERENCE": "complex_noise", "USE_NATIVE_ENGINE": True, "SEED": 0, "LR": 2e-5,
    }, root)
    exps.save_checkpoint(GUIDE_UNET, model, 1, root, extra={"note": "untrained, for timing only"})


def _median_ms(ts: List[float]) -> float:
    return 1e3 * statistics.median(ts)


def lockstep(cands: Dict[str, Callable[[], None]], reps: int, warmup: int) -> Dict[str, float]:
    """Median seconds per call of each candidate, stepping all of them once per repetition."""
    for _ in range(warmup):
        for fn in cands.values():
            fn()
    times: Dict[str, List[float]] = {k: [] for k in cands}
    for _ in range(reps):
        for k, fn in cands.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: _median_ms(v) for k, v in times.items()}


class Workload:
    """One demo model at one grid size, with every candidate step."""

    def __init__(self, root: str, name: str, grid: int) -> None:
        self.exp = exps.load_experiment_config(name, root)
        self.model = exps.load_model_from_checkpoint(self.exp).eval()
        self.g, self.d = grid, self.exp.d_state
        self.unitary = bool(getattr(self.model, "unitary", False))
        self.gamma = float(self.exp.gamma_decay)
        self.jit = export_model(self.exp, aoti=False).jit_path
        self.motor = AetheriaMotor(self.model, grid, self.d, "cpu", self.exp)
        self.psi0 = self.motor.get_dense_state()

    def x0(self) -> torch.Tensor:
        p = torch.from_numpy(self.psi0)
        return torch.cat([p.real, p.imag], dim=-1).permute(2, 0, 1).unsqueeze(0).contiguous().float()

    def motor_step(self) -> Callable[[], None]:
        return lambda: self.motor.evolve_internal_state()

    def frozen_ts_step(self) -> Callable[[], None]:
        with loader.quiet_jit_deprecation():
            m = torch.jit.load(self.jit).eval()
            fz = torch.jit.optimize_for_inference(torch.jit.freeze(m))
        state = {"x": self.x0()}

        def step() -> None:
            with torch.inference_mode():
                x = state["x"]
                state["x"] = engine_rule(x, fz(x), unitary=self.unitary, gamma_decay=self.gamma)
        return step

    def compiled_step(self) -> Tuple[Callable[[], None], float]:
        model, unitary, gamma = self.model, self.unitary, self.gamma

        def raw(x: torch.Tensor) -> torch.Tensor:
            return engine_rule(x, model(x), unitary=unitary, gamma_decay=gamma)
        fn = torch.compile(raw)
        state = {"x": self.x0()}
        t0 = time.perf_counter()
        with torch.inference_mode():
            state["x"] = fn(state["x"])
        compile_s = time.perf_counter() - t0

        def step() -> None:
            with torch.inference_mode():
                state["x"] = fn(state["x"])
        return step, compile_s

    def dense(self, env: Dict[str, str]) -> Tuple[Any, str]:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            e = ac.DenseEngine(self.g, self.d, gamma_decay=self.gamma, unitary=self.unitary)
            model, report = loader.select_model(e, self.jit)
            e.set_model(model)
            e.set_state(self.psi0)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return e, report.route


def speed_rows(root: str, name: str, grid: int, reps: int, quick: bool, aoti: bool) -> Dict[str, Any]:
    w = Workload(root, name, grid)
    out: Dict[str, Any] = {"model": name, "grid": grid, "compile_s": {}, "routes": {}}
    cands: Dict[str, Callable[[], None]] = {"AetheriaMotor": w.motor_step(),
                                            "frozen TorchScript, Python loop": w.frozen_ts_step()}
    step, cs = w.compiled_step()
    cands["torch.compile of the motor step"] = step
    out["compile_s"]["torch.compile (first call)"] = round(cs, 2)
    engines: Dict[str, Any] = {}
    if w.exp.architecture == "LOCAL_CONV":
        engines["DenseEngine builtin-conv"] = w.dense({})
        engines["DenseEngine torchscript-shim"] = w.dense({"ATHERIA_NATIVE_CONV": "0", "ATHERIA_NO_AOTI": "1"})
    else:
        engines["DenseEngine torchscript-shim"] = w.dense({"ATHERIA_NO_AOTI": "1"})
        if aoti and quick and not os.path.isfile(loader.aoti_path_for(w.jit, grid)):
            out["aoti_skipped"] = "--quick compiles nothing and no cached package exists"
        elif aoti:
            res = export_model(w.exp, grid_size=grid)
            out["compile_s"][f"AOTInductor package {grid}x{grid}"] = round(res.compile_seconds, 1) \
                if res.compile_seconds else "cached"
            if res.pt2_path:
                # forced onto the package (ATHERIA_ROUTE_SPEED=0), and the route load_model picks
                # (it skips the package when export timed frozen TorchScript faster)
                engines["DenseEngine aoti-shim"] = w.dense({"ATHERIA_ROUTE_SPEED": "0"})
                engines["DenseEngine aoti-python"] = w.dense({"ATHERIA_NO_SHIM": "1", "ATHERIA_ROUTE_SPEED": "0"})
                engines["DenseEngine, route load_model picks"] = w.dense({})
            else:
                out["aoti_skipped"] = res.aoti_skipped
    for label, (eng, route) in engines.items():
        out["routes"][label] = route
        cands[label] = (lambda e: lambda: e.step(1))(eng)
    zero = ac.DenseEngine(grid, w.d)
    zero.set_model(ac.ZeroModel())
    zero.set_state(w.psi0)
    cands["DenseEngine ZeroModel (engine overhead)"] = lambda: zero.step(1)
    shim_eng = engines.get("DenseEngine torchscript-shim")
    if shim_eng is not None and shim_eng[1] == "torchscript-shim":
        env = {"ATHERIA_NO_AOTI": "1", "ATHERIA_NATIVE_CONV": "0"}
        os.environ.update(env)
        try:
            cap = loader.select_model(ac.DenseEngine(grid, w.d), w.jit)[0]
        finally:
            for k in env:
                os.environ.pop(k, None)
        xin = w.x0().numpy()
        from atheria_core import _core
        cands["shim forward alone"] = lambda: _core._model_forward(cap, xin)
    out["ms"] = lockstep(cands, reps, 2 if quick else 5)
    ms = out["ms"]
    if "shim forward alone" in ms:
        out["engine_overhead_ms"] = round(ms["DenseEngine torchscript-shim"] - ms["shim forward alone"], 3)
    return out


def equivalence(root: str, steps: int) -> List[Dict[str, Any]]:
    rows = []
    for name in DEMOS:
        exp = exps.load_experiment_config(name, root)
        model = exps.load_model_from_checkpoint(exp).eval()
        g, d = exp.grid_size_inference, exp.d_state
        jit = export_model(exp, aoti=False).jit_path
        motor = AetheriaMotor(model, g, d, "cpu", exp)
        e = ac.DenseEngine(g, d, gamma_decay=exp.gamma_decay, unitary=bool(getattr(model, "unitary", False)))
        m, report = loader.select_model(e, jit)
        e.set_model(m)
        e.set_state(motor.get_dense_state())
        e.step(steps)
        motor.evolve_step(steps)
        rows.append({"model": name, "grid": g, "route": report.route, "steps": steps,
                     "max_abs_dpsi": float(np.max(np.abs(e.get_state() - motor.get_dense_state())))})
    return rows


def table(results: List[Dict[str, Any]]) -> str:
    lines = []
    for r in results:
        ms = r["ms"]
        refs = [k for k in ("torch.compile of the motor step", "frozen TorchScript, Python loop", "AetheriaMotor")
                if k in ms]
        lines.append(f"\n### {r['model']} {r['grid']}x{r['grid']}  (routes: {r['routes']})\n")
        lines.append("| candidate | ms/step | " + " | ".join(f"speed-up vs {k}" for k in refs) + " |")
        lines.append("|---|---|" + "---|" * len(refs))
        for k, v in sorted(ms.items(), key=lambda kv: kv[1]):
            lines.append(f"| {k} | {v:.3f} | " + " | ".join(f"{ms[ref] / v:.2f}x" for ref in refs) + " |")
        lines.append(f"\ncompile: {r['compile_s']}" + (f"; engine overhead around the forward: "
                                                       f"{r['engine_overhead_ms']} ms" if 'engine_overhead_ms' in r
                                                       else ""))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32x32 only, few repetitions, no AOTInductor compile")
    ap.add_argument("--root", help="demo experiments root (default: train them into a temporary directory)")
    ap.add_argument("--out", help="directory for compiled_models.json and compiled_models.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--sizes", default=None, help="comma-separated grid sizes for the U-Net rows")
    ap.add_argument("--guide-unet", action="store_true",
                    help=f"also time {GUIDE_UNET} (hidden 32, depth 5; untrained weights)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    ac.set_num_threads(args.threads)
    root = args.root
    if root is None:
        root = tempfile.mkdtemp(prefix="atheria_demo_")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_demo_experiments.py"), "--quick",
                        "--root", root], check=True, capture_output=True)
    sizes = [32] if args.quick else [128, 256]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    reps = args.reps or (5 if args.quick else 30)
    results = [speed_rows(root, "DEMO_UNET", g, reps, args.quick, aoti=True) for g in sizes]
    if args.guide_unet:
        write_guide_unet(root, max(sizes))
        results += [speed_rows(root, GUIDE_UNET, g, max(5, reps // 3), args.quick, aoti=True) for g in sizes]
    local_g = 64 if args.quick else 1024
    results.append(speed_rows(root, "DEMO_LOCAL_CONV", local_g, max(3, reps // 3), args.quick, aoti=False))
    eq = equivalence(root, 10 if args.quick else 100)
    info = {"threads": args.threads, "torch": torch.__version__, "backend": ac.BACKEND,
            "torch_support": ac.has_torch_support(), "cuda": torch.cuda.is_available()}
    md = table(results) + "\n\n### max |Δψ| vs AetheriaMotor\n\n| model | grid | route | steps | max abs |\n" \
        "|---|---|---|---|---|\n" + "\n".join(f"| {r['model']} | {r['grid']} | {r['route']} | {r['steps']} | "
                                              f"{r['max_abs_dpsi']:.3g} |" for r in eq)
    print(f"threads={args.threads} torch={torch.__version__} backend={ac.BACKEND}")
    print(md)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "compiled_models.json"), "w") as fh:
            json.dump({"info": info, "speed": results, "equivalence": eq}, fh, indent=1)
        with open(os.path.join(args.out, "compiled_models.md"), "w") as fh:
            fh.write(md + "\n")
    bad = [r for r in eq if not r["max_abs_dpsi"] <= 1e-4]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

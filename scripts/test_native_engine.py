#!/usr/bin/env python3
"""Migration checklist: runs a trained experiment through the native engine and
checks it against the Python reference engine (AetheriaMotor).

    python scripts/test_native_engine.py --experiment DEMO_UNET [--steps 50]
        [--device cpu|cuda] [--engine auto|dense|sparse] [--root output] [--tol 1e-4]

Items (each printed PASS/FAIL with numbers):
  1. atheria_core imports (backend, LibTorch shim, OpenMP)
  2. the checkpoint is exported to TorchScript
  3. the native engine loads it
  4. N steps run
  5. the state is finite and normalised (‖ψ‖ = 1 per occupied cell)
  6. native and AetheriaMotor agree after N steps from the same initial field (max |Δψ|)
  7. ms/step of both engines and their ratio (PASS if native is not slower than
     --max-slowdown x Python's, default 1.10 for timing noise)
Exit status 0 only if every item passes.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import traceback
from typing import Callable, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


class Checklist:
    def __init__(self) -> None:
        self.results: List[bool] = []

    def item(self, n: int, title: str, ok: bool, detail: str) -> bool:
        self.results.append(bool(ok))
        print(f"[{'PASS' if ok else 'FAIL'}] {n}. {title}: {detail}", flush=True)
        return ok

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(self.results)


def _timed_steps(step: Callable[[], None], n: int) -> List[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def resolve_device(requested: str) -> str:
    if requested.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            print(f"NOTE: --device {requested} requested but no CUDA GPU is available here; "
                  "falling back to the CPU.", flush=True)
            return "cpu"
    return requested


def save_frames(wrapper, out_dir: str, steps: int, viz_types: List[str]) -> int:
    """Runs ``steps`` more native steps from the initial field and writes
    ``<out_dir>/<type>_<step>.png`` for every step (step 0 included) and type."""
    from atheria_core.frames import save_frame

    os.makedirs(out_dir, exist_ok=True)
    wrapper.regenerate_initial_state()
    n = 0
    for step in range(steps + 1):
        if step:
            wrapper.evolve_internal_state()
        for vt in viz_types:
            payload = wrapper.get_visualization_data(vt.strip())
            save_frame(os.path.join(out_dir, f"{vt.strip()}_{step:05d}.png"), payload, scale=4)
            n += 1
    return n


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", required=True, help="experiment name (output/experiments/<NAME>)")
    ap.add_argument("--steps", type=int, default=20, help="steps to run (default 20)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--engine", default="auto", choices=("auto", "dense", "sparse"))
    ap.add_argument("--root", default=os.path.join(ROOT, "output"), help="experiments root")
    ap.add_argument("--tol", type=float, default=1e-4, help="max |Δψ| allowed in item 6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aoti", action="store_true",
                    help="also compile an AOTInductor .pt2 package for the grid size (cached; the loader prefers it)")
    ap.add_argument("--max-slowdown", type=float, default=1.10,
                    help="item 7 passes if native ms/step <= this x Python's (default 1.10: noise margin)")
    ap.add_argument("--save-frames", metavar="DIR", default=None,
                    help="also write the native run as PNG frames (one per step and visualisation) to DIR "
                         "(needs the 'viz' extra: Pillow)")
    ap.add_argument("--frame-types", default="density,phase,energy,real,imag,gradient",
                    help="comma-separated visualisation types for --save-frames")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    print(f"== atheria_core migration checklist: experiment {args.experiment}, {args.steps} steps ==", flush=True)
    check = Checklist()

    # 1. import
    try:
        import atheria_core as ac
        ok = ac.BACKEND == "c"
        check.item(1, "atheria_core imports", ok,
                   f"version {ac.__version__}, backend {ac.BACKEND} ({ac.BACKEND_REASON}), "
                   f"LibTorch shim {'yes' if ac.has_torch_shim() else 'no (Python TorchScript route)'}, "
                   f"OpenMP {'yes' if ac.has_openmp() else 'no'}, threads {ac.get_max_threads()}")
    except Exception as exc:  # noqa: BLE001
        check.item(1, "atheria_core imports", False, f"{type(exc).__name__}: {exc}")
        return 1

    import torch
    from atheria_core import experiments as exps
    from atheria_core.export import export_model
    from atheria_core.motor import AetheriaMotor
    from atheria_core.wrapper import NativeEngineWrapper

    device = resolve_device(args.device)

    # 2. export
    try:
        exp = exps.load_experiment_config(args.experiment, args.root)
        t0 = time.perf_counter()
        exported = export_model(exp, device="cpu", aoti=args.aoti)
        jit_path = exported.jit_path
        pt2 = (f"; .pt2 package {os.path.basename(exported.pt2_path)} (compile "
               f"{exported.compile_seconds:.1f} s{', cached' if not exported.compile_seconds else ''})"
               if exported.pt2_path else f"; no .pt2 package ({exported.aoti_skipped})")
        check.item(2, "model exported to TorchScript", os.path.isfile(jit_path),
                   f"{os.path.relpath(jit_path, ROOT)} ({os.path.getsize(jit_path) / 1024:.0f} KiB, "
                   f"{(time.perf_counter() - t0):.2f} s, architecture {exp.architecture}){pt2}")
    except Exception as exc:  # noqa: BLE001
        check.item(2, "model exported to TorchScript", False, f"{type(exc).__name__}: {exc}")
        return 1

    # 3. load into the native engine
    g, d = exp.grid_size_inference, exp.d_state
    wrapper = NativeEngineWrapper(g, d, device, exp, engine=args.engine, seed=args.seed)
    t0 = time.perf_counter()
    loaded = wrapper.load_model(jit_path)
    routes = {"builtin-conv": "the built-in C conv stack (weights read from the TorchScript file)",
              "aoti-shim": "the AOTInductor package in the LibTorch shim",
              "aoti-python": "the AOTInductor package through torch._inductor (no shim)",
              "torchscript-shim": "TorchScript in the LibTorch shim",
              "torchscript-python": "TorchScript through the Python route"}
    route = f"route {wrapper.model_route}: " + routes.get(wrapper.model_route or "", "?")
    report = getattr(wrapper, "model_report", None)
    if report is not None:
        if report.note:
            route += f" ({report.note})"
        if report.skipped:
            route += "; skipped " + "; ".join(f"{r}: {why}" for r, why in report.skipped)
    if not check.item(3, "native engine loads the model", loaded,
                      f"{wrapper.engine_kind} engine via {route}, {1e3 * (time.perf_counter() - t0):.0f} ms"
                      if loaded else f"error: {wrapper.last_error}"):
        return 1

    # 4. N steps (native), timed per step
    try:
        native_ms = _timed_steps(wrapper.evolve_internal_state, args.steps)
        check.item(4, f"{args.steps} steps run", wrapper.get_step_count() == args.steps,
                   f"step count {wrapper.get_step_count()}, matter cells {wrapper.get_matter_count()}")
    except Exception as exc:  # noqa: BLE001
        check.item(4, f"{args.steps} steps run", False, f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1

    # 5. finite and normalised
    psi = wrapper.get_dense_state()
    finite = bool(np.all(np.isfinite(psi)))
    norms = np.linalg.norm(psi.astype(np.complex128), axis=2)
    occupied = norms > 0
    dev = float(np.max(np.abs(norms[occupied] - 1.0))) if occupied.any() else float("nan")
    check.item(5, "state finite and normalised", finite and occupied.any() and dev < 1e-4,
               f"finite={finite}, occupied cells {int(occupied.sum())}/{g * g}, max |‖ψ‖-1| = {dev:.2e}")

    # 6. agreement with AetheriaMotor from the same initial field
    model = exps.load_model_from_checkpoint(exp, device=device)
    motor = AetheriaMotor(model, g, d, device, exp, seed=args.seed)
    wrapper.regenerate_initial_state()
    start_diff = float(np.max(np.abs(wrapper.get_dense_state() - motor.get_dense_state())))
    python_ms = _timed_steps(motor.evolve_internal_state, args.steps)
    native_ms2 = _timed_steps(wrapper.evolve_internal_state, args.steps)
    diff = float(np.max(np.abs(wrapper.get_dense_state() - motor.get_dense_state())))
    check.item(6, "native matches AetheriaMotor", start_diff == 0.0 and diff <= args.tol,
               f"max |Δψ| after {args.steps} steps = {diff:.2e} (tol {args.tol:g}; initial fields "
               f"{'identical' if start_diff == 0.0 else f'differ by {start_diff:.2e}'})")

    # 7. speed
    n_med = statistics.median(native_ms + native_ms2)
    p_med = statistics.median(python_ms)
    ratio = p_med / n_med if n_med > 0 else float("inf")
    check.item(7, "ms/step native vs Python", n_med <= args.max_slowdown * p_med,
               f"native {n_med:.3f} ms/step, AetheriaMotor {p_med:.3f} ms/step, speed-up x{ratio:.2f} "
               f"(medians of {len(native_ms) + len(native_ms2)} / {len(python_ms)} steps, torch threads "
               f"{torch.get_num_threads()}, grid {g}x{g}, d_state {d})")

    if args.save_frames:
        n_frames = save_frames(wrapper, args.save_frames, args.steps, args.frame_types.split(","))
        print(f"   wrote {n_frames} PNG frames to {args.save_frames}")

    wrapper.cleanup()
    motor.cleanup()
    passed = sum(check.results)
    print(f"== {passed}/{len(check.results)} items passed: {'ALL PASS' if check.all_passed else 'FAILURES'} ==")
    return 0 if check.all_passed else 1


if __name__ == "__main__":
    sys.exit(main())

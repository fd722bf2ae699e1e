#!/usr/bin/env python
"""Create small demo experiments by real (short) training on the CPU.

Every demo learns a known rule *through the engine's own update* (DESIGN §3.3,
``atheria_core.motor.engine_rule``): the target next field is
``rule(ψ, δ_target(ψ))`` and the loss is the mean squared error between
``rule(ψ, model(ψ))`` and it, on batches of random smooth normalised fields
(32x32, d_state = 4).  So a trained model, run by any engine, approximates the
target evolution.  Objectives (``dt`` = 0.1, ``∇²`` = the 5-point Laplacian
with zero padding, applied per channel):

* ``DEMO_UNET`` (UNET, hidden 8, depth 2) — free Schrödinger step:
  ``δ_target = i·dt·∇²ψ``.
* ``DEMO_LOCAL_CONV`` (LOCAL_CONV, 2 bias-free 3x3 layers, hidden 16, tanh;
  receptive radius 2) — the same free Schrödinger step; a strictly local,
  zero-preserving rule that the sparse native engine can run exactly.
* ``DEMO_UNET_UNITARY`` (UNET_UNITARY, hidden 8, depth 2) — Kerr phase
  rotation: the engine applies ``δ·ψ``, target ``δ_target·ψ = i·dt·|ψ_k|²·ψ_k``
  (so the network must output ``i·dt·|ψ_k|²``).
* ``DEMO_UNET_CONVLSTM`` (UNET_CONVLSTM, hidden 8, depth 1) — Schrödinger
  step with momentum, which needs memory of the previous field:
  ``δ_target,t = i·dt·∇²ψ_t + 0.5·(ψ_t − ψ_{t−1})`` (``ψ_{−1} = ψ_0``), trained
  by teacher forcing on 6-step target trajectories with the ConvLSTM memory
  carried.  The memory lives at the bottleneck (half resolution), so the
  momentum term can only be approximated.

Each run prints the loss of the untrained model, the loss of the "do nothing"
rule (δ = 0) and the final loss, and stores them in ``config.json``
(``DEMO_OBJECTIVE``, ``DEMO_RESULTS``) and in every checkpoint.  Seeds are
fixed (the losses are reproducible bit for bit); the whole run takes about 45 s
of CPU time on one thread, 70-90 s wall-clock on a busy 2-core machine
(``--quick``: a few seconds, for smoke tests).

Usage::

    python scripts/make_demo_experiments.py [--root output] [--quick] [--no-export] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from atheria_core import experiments as E  # noqa: E402
from atheria_core.models import build_model  # noqa: E402
from atheria_core.motor import engine_rule  # noqa: E402

D_STATE = 4
GRID = 32
DT = 0.1
MOMENTUM = 0.5
BATCH = 8
SEQ_LEN = 6


# --------------------------------------------------------------------------- targets
def laplacian(x: torch.Tensor) -> torch.Tensor:
    """5-point Laplacian per channel, zero padding. (B, C, H, W) -> (B, C, H, W)."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    w = k.expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, w, padding=1, groups=x.shape[1])


def times_i(z: torch.Tensor) -> torch.Tensor:
    """i·z in the [Re..., Im...] layout."""
    d = z.shape[1] // 2
    return torch.cat([-z[:, d:], z[:, :d]], dim=1)


def schrodinger_delta(x: torch.Tensor) -> torch.Tensor:
    """δ = i·dt·∇²ψ."""
    return DT * times_i(laplacian(x))


def kerr_delta(x: torch.Tensor) -> torch.Tensor:
    """Unitary-style δ (multiplied by ψ by the engine): i·dt·|ψ_k|²."""
    d = x.shape[1] // 2
    dens = x[:, :d] ** 2 + x[:, d:] ** 2
    return torch.cat([torch.zeros_like(dens), DT * dens], dim=1)


def random_fields(gen: torch.Generator, batch: int = BATCH) -> torch.Tensor:
    """Smooth random complex fields, normalised per cell: float32 (B, 2d, H, W)."""
    z = torch.randn(batch, 2 * D_STATE, GRID, GRID, generator=gen)
    z = F.avg_pool2d(F.avg_pool2d(z, 3, 1, 1, count_include_pad=False), 3, 1, 1, count_include_pad=False)
    return engine_rule(z, torch.zeros_like(z))


def momentum_trajectory(x0: torch.Tensor, steps: int) -> List[torch.Tensor]:
    """ψ_0..ψ_steps of the momentum rule."""
    traj = [x0]
    prev = x0
    for _ in range(steps):
        cur = traj[-1]
        delta = schrodinger_delta(cur) + MOMENTUM * (cur - prev)
        traj.append(engine_rule(cur, delta))
        prev = cur
    return traj


# --------------------------------------------------------------------------- demos
@dataclass
class Demo:
    name: str
    architecture: str
    params: Dict
    objective: str
    iters: int                      # optimisation steps (full run)
    lr: float
    unitary: bool = False
    target: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    recurrent: bool = False


DEMOS = [
    Demo("DEMO_UNET", "UNET", {"d_state": D_STATE, "hidden_channels": 8, "depth": 2},
         "free Schrodinger step: delta = i*dt*laplacian(psi), dt=0.1, learned through the engine rule",
         iters=500, lr=1e-2, target=schrodinger_delta),
    Demo("DEMO_LOCAL_CONV", "LOCAL_CONV",
         {"d_state": D_STATE, "hidden_channels": 16, "n_layers": 2, "kernel_size": 3, "activation": "tanh"},
         "free Schrodinger step: delta = i*dt*laplacian(psi), dt=0.1, with a local zero-preserving rule "
         "(receptive radius 2)", iters=600, lr=5e-3, target=schrodinger_delta),
    Demo("DEMO_UNET_UNITARY", "UNET_UNITARY", {"d_state": D_STATE, "hidden_channels": 8, "depth": 2},
         "Kerr phase rotation: engine applies delta*psi; target delta*psi = i*dt*|psi_k|^2*psi_k, dt=0.1",
         iters=300, lr=5e-3, unitary=True, target=kerr_delta),
    Demo("DEMO_UNET_CONVLSTM", "UNET_CONVLSTM", {"d_state": D_STATE, "hidden_channels": 8, "depth": 1},
         "Schrodinger step with momentum (needs memory): delta_t = i*dt*laplacian(psi_t) + "
         "0.5*(psi_t - psi_{t-1}), dt=0.1; teacher forcing on 6-step trajectories",
         iters=90, lr=1e-2, recurrent=True),
]


def _loss(demo: Demo, model: torch.nn.Module, x: torch.Tensor, carry_memory: bool = True) -> torch.Tensor:
    """Mean squared error of the engine-rule prediction against the target evolution.

    ``carry_memory=False`` (recurrent demos) resets h, c before every step: the
    "memory ablation" that shows how much the model relies on its memory."""
    if not demo.recurrent:
        target = engine_rule(x, demo.target(x), unitary=demo.unitary)
        return F.mse_loss(engine_rule(x, model(x), unitary=demo.unitary), target)
    traj = momentum_trajectory(x, SEQ_LEN)
    h, c = model.init_memory(x)
    total = x.new_zeros(())
    for t in range(SEQ_LEN):
        if not carry_memory:
            h, c = model.init_memory(x)
        delta, h, c = model(traj[t], h, c)
        total = total + F.mse_loss(engine_rule(traj[t], delta), traj[t + 1])
    return total / SEQ_LEN


def _zero_rule_loss(demo: Demo, x: torch.Tensor) -> float:
    class Zero(torch.nn.Module):
        def forward(self, x, h=None, c=None):
            z = torch.zeros_like(x)
            return z if h is None else (z, h, c)

        def init_memory(self, x):
            return x.new_zeros(1), x.new_zeros(1)

    return float(_loss(demo, Zero(), x))


def train_demo(demo: Demo, root: str, quick: bool, seed: int = 0, epochs: int = 3) -> Dict:
    """Trains one demo, writes its config and one checkpoint per epoch; returns a summary."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    val_gen = torch.Generator().manual_seed(seed + 2)
    x_val = random_fields(val_gen, 16)
    model = build_model(demo.architecture, demo.params)
    opt = torch.optim.Adam(model.parameters(), lr=demo.lr)
    iters = max(epochs, demo.iters // 20) if quick else demo.iters
    per_epoch = max(1, iters // epochs)
    t0 = time.perf_counter()
    with torch.no_grad():
        initial = float(_loss(demo, model, x_val))
        baseline = _zero_rule_loss(demo, x_val)
    history = []
    cfg = {
        "EXPERIMENT_NAME": demo.name, "MODEL_ARCHITECTURE": demo.architecture, "MODEL_PARAMS": demo.params,
        "GRID_SIZE_TRAINING": GRID, "GRID_SIZE_INFERENCE": GRID, "GAMMA_DECAY": 0.0,
        "INITIAL_STATE_MODE_INFERENCE": "complex_noise", "USE_NATIVE_ENGINE": True,
        "DEMO_OBJECTIVE": demo.objective, "SEED": seed, "LR": demo.lr, "BATCH_SIZE": BATCH,
    }
    E.save_experiment_config(cfg, root)
    for ep in range(1, epochs + 1):
        model.train()
        for _ in range(per_epoch):
            loss = _loss(demo, model, random_fields(gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(_loss(demo, model, x_val))
        history.append(val)
        E.save_checkpoint(demo.name, model, ep, root, optimizer=opt,
                          extra={"loss": val, "history": list(history), "initial_loss": initial,
                                 "zero_rule_loss": baseline, "iterations": ep * per_epoch})
    seconds = time.perf_counter() - t0
    results = {"INITIAL_LOSS": initial, "ZERO_RULE_LOSS": baseline, "FINAL_LOSS": history[-1],
               "ITERATIONS": epochs * per_epoch, "EPOCHS": epochs, "TRAIN_SECONDS": round(seconds, 2),
               "QUICK": quick}
    if demo.recurrent:
        with torch.no_grad():
            results["MEMORY_ABLATION_LOSS"] = float(_loss(demo, model, x_val, carry_memory=False))
    cfg["DEMO_RESULTS"] = results
    E.save_experiment_config(cfg, root)
    return {"name": demo.name, **results}


def _already_trained(name: str, root: str) -> bool:
    """True if the experiment's config loads and it has a checkpoint."""
    from atheria_core import experiments as exps
    try:
        exps.load_experiment_config(name, root)
    except exps.ExperimentError:
        return False
    return exps.find_latest_checkpoint(name, root) is not None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="output", help="experiments root (default: output/)")
    ap.add_argument("--quick", action="store_true", help="~5%% of the iterations (smoke test)")
    ap.add_argument("--no-export", action="store_true", help="skip the TorchScript export")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="train only these demos")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: these tiny models train fastest, and "
                         "deterministically, on one thread)")
    ap.add_argument("--skip-existing", action="store_true",
                    help="keep demos that already have a config and a checkpoint (no retraining)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    demos = [d for d in DEMOS if not args.only or d.name in args.only]
    unknown = set(args.only or []) - {d.name for d in DEMOS}
    if unknown:
        ap.error(f"unknown demo(s) {sorted(unknown)}; choose from {[d.name for d in DEMOS]}")
    t0 = time.perf_counter()
    for demo in demos:
        if args.skip_existing and _already_trained(demo.name, args.root):
            print(f"{demo.name:20s} already trained under {args.root}; kept (--skip-existing)", flush=True)
            continue
        s = train_demo(demo, args.root, args.quick)
        print(f"{s['name']:20s} loss: untrained {s['INITIAL_LOSS']:.3e}  delta=0 rule {s['ZERO_RULE_LOSS']:.3e}"
              f"  final {s['FINAL_LOSS']:.3e}  ({s['ITERATIONS']} iterations, {s['TRAIN_SECONDS']:.1f} s)",
              flush=True)
        if "MEMORY_ABLATION_LOSS" in s:
            print(f"{'':20s} with memory reset every step: {s['MEMORY_ABLATION_LOSS']:.3e}", flush=True)
        if not args.no_export:
            from atheria_core.export import export_model_to_jit
            path = export_model_to_jit(demo.name, root=args.root)
            print(f"{'':20s} TorchScript: {path}", flush=True)
    print(f"total {time.perf_counter() - t0:.1f} s; experiments under {os.path.abspath(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

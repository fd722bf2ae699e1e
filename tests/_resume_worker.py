"""Helper process of tests/test_snapshots.py (exact resume across processes).

    python _resume_worker.py make   DEMO_ROOT OUTDIR   # per case: 10 steps, save snapshot, 10 more, dump
    python _resume_worker.py resume DEMO_ROOT OUTDIR   # per case: load snapshot, 10 steps, dump

The dumps (``<case>.<mode>.npz``: the field and the step count) must be bit-identical.
The backend and model route come from the environment (ATHERIA_FORCE_PYTHON, ATHERIA_NO_SHIM).
"""
from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

import atheria_core as ac
from atheria_core.snapshot import file_sha256

STEPS = 10
G = 12


def conv_model(d: int):
    rng = np.random.default_rng(7)
    c = 2 * d
    w1 = (rng.standard_normal((6, c, 3, 3)) * 0.15).astype(np.float32)
    w2 = (rng.standard_normal((c, 6, 1, 1)) * 0.15).astype(np.float32)
    return ac.ConvModel([w1, w2], None, activation="tanh")


def blob(d: int):
    rng = np.random.default_rng(11)
    coords = np.array([[x, y, 0] for y in range(4, 8) for x in range(3, 8)], dtype=np.int64)
    states = (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d))).astype(np.complex64)
    return coords, states


def cases(demo_root: str):
    """name -> builder() returning (object, step(n), dump())."""
    out = {}
    for bg in ("vacuum", "zero"):
        for ext in (None, "zero", "periodic"):
            def build(bg=bg, ext=ext):
                e = ac.Engine(2, grid_size=G, background=bg, extent=ext, threshold=0.01, seed=5,
                              gamma_decay=0.01)
                e.set_model(conv_model(2))
                e.add_particles(*blob(2))
                return e
            out[f"engine-{bg}-{ext}"] = build
    for ext in ("zero", "periodic"):
        def build_dense(ext=ext):
            e = ac.DenseEngine(G, 2, extent=ext, seed=9, unitary=False)
            e.set_model(conv_model(2))
            return e
        out[f"dense-{ext}"] = build_dense
    if demo_root:
        from atheria_core.wrapper import NativeEngineWrapper
        for name, kind in (("DEMO_UNET", "dense"), ("DEMO_UNET_UNITARY", "dense"), ("DEMO_UNET_CONVLSTM", "dense"),
                           ("DEMO_LOCAL_CONV", "sparse"), ("DEMO_LOCAL_CONV", "dense")):
            path = os.path.join(demo_root, "training_checkpoints", name, "checkpoint_ep3.jit.pt")

            def build_w(path=path, kind=kind):
                w = NativeEngineWrapper(16, 4, engine=kind, seed=3)
                assert w.load_model(path), w.last_error
                return w
            out[f"wrapper-{name}-{kind}"] = build_w
        for name in ("DEMO_UNET", "DEMO_UNET_CONVLSTM"):
            path = os.path.join(demo_root, "training_checkpoints", name, "checkpoint_ep3.jit.pt")

            def build_m(path=path):
                import torch
                from atheria_core.motor import AetheriaMotor
                m = AetheriaMotor(torch.jit.load(path).eval(), 16, 4, seed=3)
                m.model_source = {"type": "file", "path": os.path.abspath(path), "sha256": file_sha256(path)}
                return m
            out[f"motor-{name}"] = build_m
    return out


def step(obj, n: int) -> None:
    if hasattr(obj, "evolve_step"):
        obj.evolve_step(n)
    else:
        obj.step(n)


def dump(obj, path: str) -> None:
    if hasattr(obj, "get_dense_state"):
        field = obj.get_dense_state()
    elif hasattr(obj, "get_state"):
        field = obj.get_state()
    else:
        coords, states = obj.matter()
        order = np.lexsort((coords[:, 2], coords[:, 1], coords[:, 0]))
        np.savez(path, coords=coords[order], states=states[order], step=obj.get_step_count())
        return
    np.savez(path, field=field, step=obj.get_step_count())


def main() -> int:
    mode, demo_root, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
    done = []
    for name, build in cases(demo_root).items():
        snap = os.path.join(outdir, f"{name}.snap")
        if mode == "make":
            obj = build()
            step(obj, STEPS)
            obj.save_snapshot(snap)
            step(obj, STEPS)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a resumed run must not need the caller's help
                obj = ac.load_snapshot(snap)
            step(obj, STEPS)
        dump(obj, os.path.join(outdir, f"{name}.{mode}.npz"))
        done.append(name)
    print(json.dumps(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cases of the golden regression suite (tests/golden/), shared by the generator
(scripts/make_golden.py) and the test (tests/test_golden.py).

Every case is deterministic from fixed seeds: built-in conv models from NumPy generators,
demo architectures (the registry classes and parameters of scripts/make_demo_experiments.py,
untrained, initialised after ``torch.manual_seed``) exported to TorchScript in a temporary
directory.  A case runs STEPS steps and records the field every EVERY steps.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

STEPS = 12
EVERY = 4
G_ENGINE, D_ENGINE = 12, 2
G_DEMO, D_DEMO = 16, 4
#: stated tolerance: max |Δψ| against the stored trajectory (fields are normalised, |ψ_k| <= 1)
TOLERANCE = 1e-4

DEMO_ARCHS = [("UNET", {"d_state": D_DEMO, "hidden_channels": 8, "depth": 2}, False),
              ("UNET_UNITARY", {"d_state": D_DEMO, "hidden_channels": 8, "depth": 2}, True),
              ("UNET_CONVLSTM", {"d_state": D_DEMO, "hidden_channels": 8, "depth": 1}, False),
              ("LOCAL_CONV", {"d_state": D_DEMO, "hidden_channels": 16, "n_layers": 2, "kernel_size": 3,
                              "activation": "tanh"}, False)]


def conv_model(ac: Any, d: int = D_ENGINE):
    rng = np.random.default_rng(2024)
    w1 = (rng.standard_normal((6, 2 * d, 3, 3)) * 0.15).astype(np.float32)
    w2 = (rng.standard_normal((2 * d, 6, 1, 1)) * 0.15).astype(np.float32)
    return ac.ConvModel([w1, w2], None, activation="tanh")


def blob(d: int = D_ENGINE) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(99)
    coords = np.array([[x, y, 0] for y in range(3, 8) for x in range(4, 9)], dtype=np.int64)
    s = (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d))).astype(np.complex64)
    return coords, s / np.linalg.norm(s, axis=1, keepdims=True).astype(np.float32)


def demo_model(arch: str, params: Dict[str, Any]):
    import torch
    from atheria_core.models import build_model
    torch.manual_seed(1234)
    model = build_model(arch, params).eval()
    if arch == "LOCAL_CONV":   # the demo trains a nearly-zero rule; scale so the trajectory moves
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.5)
    return model


def param_digest(model: Any) -> str:
    """sha256 of the model's parameters (detects a torch whose initialisation differs)."""
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(np.ascontiguousarray(p.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def export_demo(arch: str, params: Dict[str, Any], workdir: str) -> Tuple[str, str]:
    from atheria_core.export import export_module
    model = demo_model(arch, params)
    path = os.path.join(workdir, f"golden_{arch}.jit.pt")
    if not os.path.exists(path):
        export_module(model, path, d_state=D_DEMO, grid_size=G_DEMO)
    return path, param_digest(model)


def _sparse_field(e: Any) -> np.ndarray:
    return e.to_dense((0, 0, G_ENGINE, G_ENGINE))


def cases(ac: Any, workdir: str) -> Dict[str, Callable[[], Tuple[Callable[[], None], Callable[[], np.ndarray]]]]:
    """name -> build() returning (step_once, field) for the atheria_core module ``ac``."""
    out: Dict[str, Callable] = {}
    for bg in ("vacuum", "zero"):
        for ext in ("zero", "periodic", None):
            def b(bg=bg, ext=ext):
                e = ac.Engine(D_ENGINE, grid_size=G_ENGINE, background=bg, extent=ext, threshold=0.01, seed=5,
                              gamma_decay=0.02)
                e.set_model(conv_model(ac))
                e.add_particles(*blob())
                return (lambda: e.step(1)), (lambda: _sparse_field(e))
            out[f"engine_{bg}_{ext}"] = b
    for ext in ("zero", "periodic"):
        def bd(ext=ext):
            e = ac.DenseEngine(G_ENGINE, D_ENGINE, extent=ext, seed=9)
            e.set_model(conv_model(ac))
            return (lambda: e.step(1)), e.get_state
        out[f"dense_{ext}"] = bd
    for arch, params, unitary in DEMO_ARCHS:
        kinds = ["dense", "sparse"] if arch == "LOCAL_CONV" else ["dense"]
        for kind in kinds:
            def bw(arch=arch, params=params, kind=kind, unitary=unitary):
                from atheria_core.wrapper import NativeEngineWrapper
                path, _ = export_demo(arch, params, workdir)
                w = NativeEngineWrapper(G_DEMO, D_DEMO, engine=kind, seed=3, unitary=unitary,
                                        initial_state_mode="random" if kind == "sparse" else "complex_noise")
                assert w.load_model(path), w.last_error
                return w.evolve_internal_state, w.get_dense_state
            out[f"native_{arch}_{kind}"] = bw
    return out


def motor_cases(workdir: str) -> Dict[str, Callable]:
    """The reference engine on the demo architectures: native_<arch>_dense must match it (DESIGN §3.4)."""
    out: Dict[str, Callable] = {}
    for arch, params, unitary in DEMO_ARCHS:
        def bm(arch=arch, params=params, unitary=unitary):
            import torch
            from atheria_core.motor import AetheriaMotor
            path, _ = export_demo(arch, params, workdir)
            m = AetheriaMotor(torch.jit.load(path).eval(), G_DEMO, D_DEMO, seed=3, unitary=unitary)
            return m.evolve_internal_state, m.get_dense_state
        out[f"native_{arch}_dense"] = bm
    return out


def trajectory(build: Callable) -> np.ndarray:
    step, field = build()
    frames: List[np.ndarray] = [field()]
    for t in range(1, STEPS + 1):
        step()
        if t % EVERY == 0:
            frames.append(field())
    return np.stack(frames).astype(np.complex64)

"""Writes docs/img/viz/<type>.png: one frame of each visualisation (docs/visualizations.md).

    python scripts/make_viz_docs.py [--out docs/img/viz]

The field: the vacuum of a 48x48 DenseEngine with a charge-1 vortex and a plane wave
applied (docs/tools.md), advanced 5 steps by a small fixed conv rule.  Types the engine
does not provide (yet) are skipped with a message.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

TYPES = ("density", "phase", "energy", "real", "imag", "gradient", "holographic", "holographic_bulk")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "viz"))
    args = ap.parse_args()
    import atheria_core as ac
    from atheria_core.frames import save_frame

    g, d = 48, 2
    eng = ac.DenseEngine(g, d, seed=1, vacuum_strength=0.3)
    eng.apply_tool("vortex", {"x": 24, "y": 24, "radius": 14, "strength": 1})
    eng.apply_tool("wave", {"x": 24, "y": 24, "radius": 20, "strength": 0.6, "angle": 0.5})
    rng = np.random.default_rng(0)
    eng.set_model(ac.ConvModel([(rng.standard_normal((2 * d, 2 * d, 3, 3)) * 0.05).astype(np.float32)], None,
                               activation="identity"))
    eng.step(5)
    os.makedirs(args.out, exist_ok=True)
    for vt in TYPES:
        try:
            data = eng.compute_visualization(vt)
        except ValueError as exc:
            print(f"skip {vt}: {exc}")
            continue
        path = save_frame(os.path.join(args.out, f"{vt}.png"), data, vt, scale=4)
        print(f"{path}: {np.asarray(data).shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

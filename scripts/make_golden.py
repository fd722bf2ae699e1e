"""Regenerates the golden regression trajectories (tests/golden/*.npz + MANIFEST.json).

    python scripts/make_golden.py [--out tests/golden]

Run this ONLY when a change of the numbers is intended (and say why in the commit): the
test suite compares every engine, mode and demo architecture against these files within
tests/golden_cases.TOLERANCE.  The manifest records the versions and the machine that
produced them, and the parameter digest of each demo model (a torch whose initialisation
differs is then reported as such, not as a regression).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden"))
    args = ap.parse_args()
    import torch
    import atheria_core as ac
    import golden_cases as gc

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "atheria_core": ac.__version__, "backend": ac.BACKEND, "numpy": np.__version__,
                "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                "platform": platform.platform(), "steps": gc.STEPS, "every": gc.EVERY,
                "tolerance": gc.TOLERANCE, "cases": {}, "model_digests": {}}
    try:
        manifest["git_commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        manifest["git_commit"] = None
    with tempfile.TemporaryDirectory() as work:
        for arch, params, _ in gc.DEMO_ARCHS:
            manifest["model_digests"][arch] = gc.export_demo(arch, params, work)[1]
        for name, build in gc.cases(ac, work).items():
            traj = gc.trajectory(build)
            np.savez_compressed(os.path.join(args.out, f"{name}.npz"), psi=traj)
            manifest["cases"][name] = {"shape": list(traj.shape), "max_abs": float(np.abs(traj).max())}
            print(f"{name}: {traj.shape}")
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {len(manifest['cases'])} trajectories, {total / 1024:.0f} KiB, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

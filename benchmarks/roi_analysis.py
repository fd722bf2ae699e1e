"""ROI views and analysis cost: a 64x64 region in a universe of 1e6 vs 1e3 matter cells.

    python benchmarks/roi_analysis.py [--repeats 50] [--json OUT]

For each universe size (sparse Engine, zero background, d_state 4; the ROI holds the same
32x32 block of matter in both, the rest of the matter lies far from it) it times, as medians of ``--repeats`` calls:
``to_dense(roi)``, ``compute_visualization('density', roi)``, ``analyze(roi)``,
``matter_in_roi(roi)`` and the whole-universe ``analyze()``; then prints the ratio
1e6 / 1e3 for each.  The ROI calls should cost about the same in both universes (ratio ~1:
their cost grows with the region and its matter, not the universe); ``analyze()`` of
everything grows with the matter (ratio ~1000).  A 1e5 universe is timed too: from there
on the ROI calls do one hash lookup per region cell (a region smaller than the matter),
so 1e5 -> 1e6 isolates the universe's size; below it they scan the (smaller) matter.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))

ROI = (468, 468, 532, 532)   # 64 x 64
INSIDE = 32                  # the ROI holds the same 32 x 32 matter block in both universes


def universe(n_cells: int, d: int = 4):
    """A 32x32 block of matter in the ROI, the rest of the n cells in a square far from it."""
    import atheria_core as ac
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[484:484 + INSIDE, 484:484 + INSIDE]
    blocks = [np.stack([xs.ravel(), ys.ravel()], 1)]
    rest = n_cells - INSIDE * INSIDE
    if rest > 0:
        side = int(np.ceil(rest ** 0.5))
        ys, xs = np.mgrid[0:side, 0:side]
        far = np.stack([xs.ravel() + 100_000, ys.ravel()], 1)[:rest]
        blocks.append(far)
    xy = np.concatenate(blocks)
    coords = np.concatenate([xy, np.zeros((len(xy), 1), np.int64)], 1).astype(np.int64)
    states = (rng.standard_normal((len(coords), d)) + 1j * rng.standard_normal((len(coords), d))).astype(np.complex64)
    e = ac.Engine(d, background="zero")
    e.add_particles(coords, states)
    return e


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    import atheria_core as ac

    ops = {
        "to_dense(roi)": lambda e: e.to_dense(ROI),
        "compute_visualization(density, roi)": lambda e: e.compute_visualization("density", ROI),
        "analyze(roi)": lambda e: e.analyze(ROI),
        "matter_in_roi(roi)": lambda e: e.matter_in_roi(ROI),
        "analyze() of all matter": lambda e: e.analyze(),
    }
    res = {}
    for n in (1000, 100_000, 1_000_000):
        e = universe(n)
        res[n] = {"matter": e.get_matter_count(),
                  "roi_matter": int(e.analyze(ROI)["matter_count"]),
                  **{name: median_ms(lambda: op(e), args.repeats) for name, op in ops.items()}}
        del e
    print(f"backend {ac.BACKEND}; ROI {ROI} (64x64); medians of {args.repeats} calls; "
          f"matter {res[1000]['matter']} vs {res[1_000_000]['matter']} cells "
          f"({res[1000]['roi_matter']} vs {res[1_000_000]['roi_matter']} in the ROI)")
    print("| operation | 1e3 cells (ms) | 1e5 cells (ms) | 1e6 cells (ms) | ratio 1e6/1e3 | ratio 1e6/1e5 |")
    print("|---|---|---|---|---|---|")
    for name in ops:
        a, m, b = res[1000][name], res[100_000][name], res[1_000_000][name]
        print(f"| {name} | {a:.3f} | {m:.3f} | {b:.3f} | {b / a:.2f} | {b / m:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": ac.BACKEND, "roi": ROI, "repeats": args.repeats,
                       "results": {str(k): v for k, v in res.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

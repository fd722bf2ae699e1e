"""Route speeds measured once, at export: a .pt2 package against frozen TorchScript.

AOTInductor is not always the faster CPU route.  On the demo U-Net (hidden 8, depth 2) the
package runs ~1.4x faster than frozen + optimised TorchScript at 128x128, but on the U-Net the
migration guide trains (hidden 32, depth 5) frozen TorchScript (oneDNN convolutions) is ~1.15x
faster than the package (docs/torchscript.md).  So ``export_model`` times both forwards on the
package's input and writes ``<package>.speed.json`` next to it; ``select_model`` skips the
package when TorchScript was faster.  The choice is made once and recorded, so every process
makes the same one and a resumed run stays bit-identical (a timing at load would not).

The record names the package by size and modification time: a package written again (a new
compile) has no valid record until it is timed again.  ``ATHERIA_ROUTE_SPEED=0`` ignores the
records (the fixed preference, aoti first).
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import time
from typing import Any, Callable, Dict, Optional

from ._atomic import atomic_write_bytes

logger = logging.getLogger("atheria_core")

FORMAT = "atheria-route-speed"
VERSION = 1
#: the package is kept unless TorchScript was faster by more than this fraction (timing noise)
MARGIN = 0.05
#: largest record read (it is a few hundred bytes)
MAX_BYTES = 4096


def record_path(pt2: str) -> str:
    """``checkpoint_ep3.g128.pt2`` -> ``checkpoint_ep3.g128.pt2.speed.json``."""
    return pt2 + ".speed.json"


def _identity(pt2: str) -> Dict[str, int]:
    st = os.stat(pt2)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def median_ms(fns: Dict[str, Callable[[], Any]], reps: int = 7, warmup: int = 2) -> Dict[str, float]:
    """Median milliseconds per call of each function, called in turn (lock-step)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, list] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def write(pt2: str, aoti_ms: float, torchscript_ms: float, threads: int, torch_version: str) -> str:
    """Writes the record for ``pt2`` (atomically) and returns its path."""
    rec = {"format": FORMAT, "version": VERSION, "package": os.path.basename(pt2), **_identity(pt2),
           "aoti_ms": float(aoti_ms), "torchscript_ms": float(torchscript_ms), "threads": int(threads),
           "torch_version": str(torch_version)}
    path = record_path(pt2)
    atomic_write_bytes(path, json.dumps(rec, sort_keys=True).encode())
    return path


def read(pt2: str) -> Optional[Dict[str, Any]]:
    """The record of ``pt2`` if one exists and belongs to this very file, else None."""
    path = record_path(pt2)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ValueError(f"over {MAX_BYTES} bytes")
        rec = json.loads(raw.decode())
        if not isinstance(rec, dict) or rec.get("format") != FORMAT or rec.get("version") != VERSION:
            raise ValueError("not a route-speed record of this version")
        for key in ("aoti_ms", "torchscript_ms"):
            if not isinstance(rec.get(key), (int, float)) or not rec[key] > 0:
                raise ValueError(f"bad {key}")
        if {k: rec.get(k) for k in ("size", "mtime_ns")} != _identity(pt2):
            return None  # the package was written again after it was timed
        return rec
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        logger.warning("atheria_core: ignoring %s: %s", path, exc)
        return None


def torchscript_faster(pt2: str) -> Optional[str]:
    """Why the TorchScript route should run instead of ``pt2`` (its record says it was faster),
    or None (no valid record, records ignored, or the package was not slower)."""
    if os.environ.get("ATHERIA_ROUTE_SPEED", "1") == "0":
        return None
    rec = read(pt2)
    if rec is None or not rec["torchscript_ms"] < rec["aoti_ms"] * (1.0 - MARGIN):
        return None
    return (f"{os.path.basename(pt2)} ran {rec['aoti_ms']:.3g} ms per forward against frozen TorchScript's "
            f"{rec['torchscript_ms']:.3g} ms when exported ({rec.get('threads')} threads; "
            f"{os.path.basename(record_path(pt2))})")

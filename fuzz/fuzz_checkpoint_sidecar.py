"""Fuzz target: a checkpoint's ``.sha256`` sidecar bytes -> the digest or CheckpointError."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import atheris
    with atheris.instrument_imports():
        from atheria_core import experiments
except ImportError:
    from atheria_core import experiments

ALLOWED = (experiments.CheckpointError,)


def check(data: bytes) -> None:
    try:
        digest = experiments.parse_sidecar(data, "ckpt.pth.sha256")
    except ALLOWED:
        return
    assert re.fullmatch(r"[0-9a-f]{64}", digest), digest


if __name__ == "__main__":
    from _harness import main
    main(check)

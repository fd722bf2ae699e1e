"""Discovery of the optional LibTorch shim (filled in by the TorchScript work)."""
from __future__ import annotations


def shim_available() -> bool:
    """True if atheria_core._torch_shim was built and can be loaded."""
    return False

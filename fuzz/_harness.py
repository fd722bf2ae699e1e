"""Shared runner of the fuzz targets: Atheris when run as a script."""
from __future__ import annotations

import sys
from typing import Callable


def main(check: Callable[[bytes], None]) -> None:
    """Runs ``check`` under Atheris (libFuzzer flags from the command line, e.g. -runs=N)."""
    import atheris

    atheris.Setup(sys.argv, check)
    atheris.Fuzz()

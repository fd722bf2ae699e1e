"""Fuzz target: experiment ``config.json`` bytes -> Experiment or ConfigError, nothing else.

``parse_config_bytes`` is what ``load_experiment_config`` runs on the file's bytes."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import atheris
    with atheris.instrument_imports():
        from atheria_core import experiments
except ImportError:  # Hypothesis runs (tests) need no Atheris
    from atheria_core import experiments

ALLOWED = (experiments.ConfigError,)


def check(data: bytes) -> None:
    try:
        exp = experiments.parse_config_bytes(data, root="/nonexistent", source="config.json")
    except ALLOWED:
        return
    # accepted: it must round-trip through to_config
    experiments.parse_config(exp.to_config(), root="/nonexistent")


if __name__ == "__main__":
    from _harness import main
    main(check)

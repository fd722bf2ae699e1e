"""The registry slot for workloads defined outside this package.

``benchmarks/compiled_models.py`` (optional; compiled-model rows) may define
``WORKLOADS`` (kind -> function(params, ctx) -> {"engines", "comparisons",
"extra"}, the contract of ``workloads.py``) and ``plan(quick, steps, warmup)``
returning workload specs (``plan._spec`` dicts: name, group, kind, params).
They are merged into the registry and appended to the plan when the module
imports; a module that is absent is simply not used.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Dict, List, Optional

logger = logging.getLogger(__name__)

#: modules (importable from benchmarks/) that may contribute workloads
PLUGIN_MODULES = ("compiled_models",)


def _plugins() -> List[Any]:
    mods = []
    for name in PLUGIN_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ImportError as exc:
            if getattr(exc, "name", None) != name:  # the module exists but failed: say so
                logger.warning("benchmark plugin %s failed to import: %s", name, exc)
    return mods


def register_plugin_workloads(registry: Dict[str, Callable[..., Dict[str, Any]]]) -> None:
    for mod in _plugins():
        for kind, fn in getattr(mod, "WORKLOADS", {}).items():
            if kind in registry:
                raise ValueError(f"benchmark plugin {mod.__name__}: workload kind {kind!r} already exists")
            registry[kind] = fn


def plugin_plan(quick: bool, steps: Optional[int], warmup: Optional[int]) -> List[Dict[str, Any]]:
    specs: List[Dict[str, Any]] = []
    for mod in _plugins():
        fn = getattr(mod, "plan", None)
        if fn is not None:
            specs.extend(fn(quick, steps, warmup))
    return specs

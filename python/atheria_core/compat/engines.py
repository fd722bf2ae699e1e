"""``Engine`` and ``DenseEngine`` of the original module, over the native engines.

Every step, state and visualisation number comes from the native engine of
the selected backend (``atheria_core.BACKEND``); this layer converts tensors,
keeps the original's return values and keeps the two pieces of bookkeeping
that the original had and ours does not: its *active region* (matter plus
the 3x3x3 cube around every particle, plus what ``activate_neighborhood``
added since the last step) and the steps counted without a model.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

from ._convert import coord_tuple, state_vector, to_numpy, to_torch, torch
from .coord_map import Coord3D, coords_to_list

logger = logging.getLogger("atheria_core.compat")

Key = Tuple[int, int, int]

#: Visualisations of the original Engine.compute_visualization; anything else gives zeros.
ORIGINAL_VIZ = ("density", "phase", "energy", "holographic", "holographic_bulk")


def _device(device: Any) -> str:
    """The original fell back to the CPU silently when CUDA was requested but unavailable."""
    dev = str(device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        logger.info("atheria_core.compat: device %r requested without CUDA; using the CPU (as the original)", dev)
        return "cpu"
    return dev


def _cube(c: Key, radius: int) -> List[Key]:
    r = range(-radius, radius + 1)
    return [(c[0] + dx, c[1] + dy, c[2] + dz) for dx in r for dy in r for dz in r]


_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)],
                    dtype=np.int64)


class Engine:
    """The original sparse ``Engine(d_state, device="cpu", grid_size=64)``."""

    def __init__(self, d_state: int, device: str = "cpu", grid_size: int = 64) -> None:
        from .. import _impl
        self._eng = _impl.Engine(d_state, _device(device), grid_size)
        self._d = int(self._eng.d_state)
        self._grid = int(self._eng.grid_size)
        # The original's active region is the 3x3x3 cube around every particle (kept so by
        # add_particle and rebuilt from the matter by every step) plus what activate_neighborhood
        # added since the last step; the matter part is derived from the native matter on demand.
        self._activated: Set[Key] = set()
        self._steps_without_model = 0
        self._error = ""

    # ----------------------------------------------------------------- model
    def load_model(self, model_path: str) -> bool:
        ok = bool(self._eng.load_model(model_path))
        self._error = "" if ok else self._eng.get_last_error()
        return ok

    def get_last_error(self) -> str:
        return self._error or self._eng.get_last_error()

    # ----------------------------------------------------------------- matter
    def add_particle(self, coord: Any, state: Any) -> None:
        key = coord_tuple(coord)
        self._eng.add_particle(key, state_vector(state, self._d))

    def get_state_at(self, coord: Any) -> "torch.Tensor":
        """(d_state,) complex64 tensor: the matter, else our vacuum (DESIGN §3.2; not the original's)."""
        return to_torch(self._eng.get_state_at(coord_tuple(coord)))

    def get_matter_count(self) -> int:
        return int(self._eng.get_matter_count())

    def get_step_count(self) -> int:
        return int(self._eng.get_step_count()) + self._steps_without_model

    def clear(self) -> None:
        self._eng.clear()
        self._activated.clear()
        self._steps_without_model = 0

    # ----------------------------------------------------------------- stepping
    def step_native(self) -> int:
        """One step; the matter count.  With no model the matter is kept and the step counted
        (the original's behaviour).  A failing model raises (the universe is unchanged)."""
        if not self._eng.has_model():
            self._steps_without_model += 1
        else:
            try:
                self._eng.step_native()
            except Exception as exc:
                self._error = str(exc) or type(exc).__name__
                raise
        self._activated.clear()          # the step rebuilt the region from the matter
        return self.get_matter_count()

    # ----------------------------------------------------------------- region
    def activate_neighborhood(self, coord: Any, radius: int = 1) -> None:
        """Adds the cube of side 2*radius+1 around ``coord`` to the active region.  (The
        native engines evaluate matter and its neighbours anyway; this does not create matter.)"""
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
            raise TypeError(f"radius: expected an int, got {type(radius).__name__}")
        if not 0 <= int(radius) <= 64:
            raise ValueError(f"radius: must be in [0, 64], got {radius}")
        self._activated.update(_cube(coord_tuple(coord), int(radius)))

    def get_active_coords(self) -> List[Coord3D]:
        """The active region (matter plus its 3x3x3 neighbourhoods, plus cells activated since
        the last step), as the original; each cell once."""
        coords, _ = self._eng.matter()
        region = np.unique((coords[:, None, :] + _OFFSETS[None]).reshape(-1, 3), axis=0)
        out = coords_to_list(region)
        if self._activated:
            seen = set(map(tuple, region.tolist()))
            out.extend(Coord3D(*k) for k in self._activated if k not in seen)
        return out

    def query_radius(self, center: Any, radius: int) -> List[Coord3D]:
        """Matter cells in the box (Chebyshev distance <= radius, in 3-D) around ``center``."""
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
            raise TypeError(f"radius: expected an int, got {type(radius).__name__}")
        c = np.asarray(coord_tuple(center, "center"), dtype=np.int64)
        coords, _ = self._eng.matter()
        if len(coords) == 0:
            return []
        inside = np.all(np.abs(coords - c) <= int(radius), axis=1)
        return coords_to_list(coords[inside])

    # ----------------------------------------------------------------- visualisation
    def compute_visualization(self, viz_type: str) -> "torch.Tensor":
        """Matter only (absent cells 0) over the grid_size² window at z = 0, as a float32 tensor:
        density / energy (both Σ|ψ|², as the original) / phase (arg ψ₀), (H, W); holographic
        (H, W, 3); holographic_bulk (5, H, W).  An unknown type gives zeros (H, W)."""
        g = self._grid
        name = viz_type.lower() if isinstance(viz_type, str) else ""
        if name not in ORIGINAL_VIZ:
            return torch.zeros((g, g), dtype=torch.float32)
        coords, states = self._eng.matter()
        sel = (coords[:, 2] == 0) & (coords[:, 0] >= 0) & (coords[:, 0] < g) & (coords[:, 1] >= 0) & \
              (coords[:, 1] < g)
        field = np.zeros((g, g, self._d), dtype=np.complex64)
        field[coords[sel, 1], coords[sel, 0]] = states[sel]
        from .._fallback import viz as _viz   # the NumPy viz.h formulas, shared with the motor
        out = _viz.compute(field, "density" if name == "energy" else name, 0)
        if name == "holographic":
            mask = np.zeros((g, g), dtype=bool)
            mask[coords[sel, 1], coords[sel, 0]] = True
            out[~mask] = 0.0            # the original wrote only matter cells
        return to_torch(out)


class DenseEngine:
    """The original ``DenseEngine(grid_size, d_state, device="cpu")``: state [1, C, H, W]."""

    def __init__(self, grid_size: int, d_state: int, device: str = "cpu") -> None:
        from .. import _impl
        self._eng = _impl.DenseEngine(grid_size, d_state, _device(device))
        self._g = int(self._eng.grid_size)
        self._d = int(self._eng.d_state)
        # the original starts at zeros (ours at the vacuum)
        self._eng.set_state(np.zeros((self._g, self._g, self._d), dtype=np.complex64))

    def load_model(self, model_path: str) -> bool:
        return bool(self._eng.load_model(model_path))

    def get_last_error(self) -> str:
        return self._eng.get_last_error()

    def step(self) -> int:
        """0 with no model (nothing happens), H*W after a step, -1 on error (the state is then
        unchanged and get_last_error() says why)."""
        if not self._eng.has_model():
            return 0
        try:
            self._eng.step()
        except Exception as exc:  # noqa: BLE001 - the original reported every failure as -1
            logger.error("atheria_core.compat: DenseEngine.step failed: %s", exc)
            return -1
        return self._g * self._g

    def get_state(self) -> "torch.Tensor":
        """[1, C, H, W] complex64 (a copy: writing to it does not change the engine)."""
        psi = self._eng.get_state()                       # (H, W, C)
        return to_torch(np.transpose(psi, (2, 0, 1))[None])

    def set_state(self, new_state: Any) -> None:
        """[1, C, H, W] or [C, H, W] tensor (C = d_state, H = W = grid_size)."""
        arr = to_numpy(new_state, "new_state")
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[0] != 1:
            raise ValueError(f"new_state: expected [1, C, H, W] or [C, H, W], got {tuple(arr.shape)}")
        if arr.shape[1:] != (self._d, self._g, self._g):
            raise ValueError(f"new_state: expected C, H, W = {self._d}, {self._g}, {self._g}, "
                             f"got {tuple(arr.shape[1:])}")
        self._eng.set_state(np.transpose(arr[0], (1, 2, 0)))

    def apply_tool(self, action: str, params: Optional[Dict[str, float]] = None) -> bool:
        """Applies a native tool (docs/tools.md); True if applied, False if the action or its
        params were refused (the original was a placeholder that always returned False)."""
        try:
            self._eng.apply_tool(action, dict(params or {}))
        except (TypeError, ValueError) as exc:
            logger.info("atheria_core.compat: apply_tool(%r) refused: %s", action, exc)
            return False
        return True

    def generate_bulk_state(self, base_field: Any, depth: int) -> "torch.Tensor":
        """(H, W), (C, H, W) or [1, C, H, W] float -> [1, depth*C, H, W] float32 tensor (the
        native blur stack); depth <= 1 gives the field itself, as the original."""
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
            raise TypeError(f"depth: expected an int, got {type(depth).__name__}")
        arr = to_numpy(base_field, "base_field")
        return to_torch(self._eng.generate_bulk_state(arr, max(1, int(depth))))

    def get_step_count(self) -> int:
        return int(self._eng.get_step_count())

"""The sparse ``Engine`` (DESIGN §3.3, §3.4), vectorised with NumPy.

Matter is kept as two arrays — coords (N, 3) int64 and states (N, d) complex64 —
and looked up through ``KeyCodec`` keys with ``np.searchsorted``.  A step:

1. evaluated cells E = matter ⊕ in-plane offsets of Chebyshev radius r = (p-1)/2
   (wrapped for 'periodic', clipped to the window for 'zero'), in Morton order like the C engine;
2. for each chunk of E, gather p×p patches of the field at time t (matter, else
   the background: vacuum at step t or zero; 0 outside a 'zero' window);
3. run the model on the float32 batch (B, 2d, p, p), take δ at the centre;
4. apply the rule (rule.py) and keep the cells with n > threshold.

Nothing is written until every chunk succeeded (double buffering).  Storage
order follows the C ``ath_cellmap``: inserts append, overwrites stay in place,
a step stores the kept cells in Morton order.
"""
from __future__ import annotations

import importlib
import logging
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ._args import (MAX_D_STATE, MAX_GRID_SIZE, MAX_PATCH, MAX_REGION_CELLS, COORD_LIMIT, as_bool, as_choice,
                    as_coord_int, as_device, as_float, as_int, as_seed, coords_array, parse_coord, parse_roi,
                    states_array)
from ._guard import Guarded, guard_methods
from .coord import KeyCodec, KeyIndex, morton_order, unique_rows
from .models import ModelSpec, describe_model, model_output
from .rule import apply_rule
from .vacuum import vacuum_cells, vacuum_region
from . import viz as _viz

logger = logging.getLogger("atheria_core._fallback")

#: Cells per model call (ATH_ENGINE_DEFAULT_BATCH), capped so that one batch holds at most
#: 2**24 floats (ATH_ENGINE_MAX_BATCH_FLOATS), as in the C engine.
DEFAULT_BATCH = 4096
MAX_BATCH_FLOATS = 1 << 24


def load_model_callable(engine: Any, path: Any) -> Any:
    """The model for ``engine.load_model(path)``, chosen by atheria_core._model_loader (the one owner
    of model loading; raises on failure, also for a ``path`` that is not a path: load_model then
    returns False, as in the C extension)."""
    loader = importlib.import_module("atheria_core._model_loader")
    return loader.load_for_engine(engine, path)


class ModelSlot(Guarded):
    """``has_model`` / ``load_model`` / ``get_last_error``, shared by Engine and DenseEngine.

    The host class provides ``set_model``, ``_model``, ``_device`` and ``_last_error``."""

    _model: Any
    _device: str
    _last_error: str

    def set_model(self, model: Any) -> None:  # pragma: no cover - provided by the host class
        raise NotImplementedError

    def has_model(self) -> bool:
        return self._model is not None

    def load_model(self, path: Any = None, model_path: Any = None) -> bool:
        """Loads a model file (TorchScript or .pt2; ``model_path=`` is the original keyword);
        False + get_last_error() on failure (engine unchanged).  KeyboardInterrupt and
        SystemExit propagate."""
        if (path is None) == (model_path is None):
            raise TypeError("load_model() takes exactly one of path or model_path")
        if path is None:
            path = model_path
        try:
            model = load_model_callable(self, path)
            self._unguarded_set_model(model)  # type: ignore[attr-defined]  # load_model holds the guard
        except Exception as exc:  # noqa: BLE001 - the contract is "False + message"
            self._last_error = str(exc) or type(exc).__name__
            logger.warning("%s.load_model(%r) failed: %s", type(self).__name__, path, self._last_error)
            return False
        self._last_error = ""
        return True

    def get_last_error(self) -> str:
        """Message of the last failed load_model / step ('' if none)."""
        return self._last_error


#: Engine methods that run under the busy guard (as in the C extension).
_ENGINE_GUARDED = ("set_model", "load_model", "step", "step_native", "add_particle", "add_particles",
                   "get_state_at", "get_states", "matter", "get_active_coords", "get_matter_count",
                   "get_step_count", "clear", "activate_neighborhood", "query_radius", "to_dense",
                   "compute_visualization", "_stats")


@guard_methods(_ENGINE_GUARDED)
class Engine(ModelSlot):
    """Sparse universe: matter in a map, absent cells read as the background (DESIGN §3)."""

    def __init__(self, d_state: int, device: str = "cpu", grid_size: int = 64, *,
                 background: str = "vacuum", extent: Optional[str] = None,
                 threshold: float = 0.01, gamma_decay: float = 0.0, unitary: bool = False,
                 seed: int = 0, vacuum_strength: float = 0.1, patch: int = 3) -> None:
        self._d = as_int(d_state, "d_state", 1, MAX_D_STATE)
        self._device = as_device(device)
        self._grid = as_int(grid_size, "grid_size", 1, MAX_GRID_SIZE)
        self._background = as_choice(background, "background", ("vacuum", "zero"))
        self._extent = as_choice(extent, "extent", (None, "zero", "periodic"))
        self._threshold = as_float(threshold, "threshold", lo=0.0)
        self._gamma = as_float(gamma_decay, "gamma_decay", lo=0.0)
        self._unitary = as_bool(unitary, "unitary")
        self._seed = as_seed(seed)
        self._strength = as_float(vacuum_strength, "vacuum_strength", lo=0.0)
        self._patch = as_int(patch, "patch", 1, MAX_PATCH)
        if self._patch % 2 != 1:
            raise ValueError(f"patch: must be odd and in [1, {MAX_PATCH}], got {self._patch}")
        self._r = (self._patch - 1) // 2
        per_cell = 2 * self._d * self._patch * self._patch
        self._batch = max(1, min(DEFAULT_BATCH, MAX_BATCH_FLOATS // per_cell))
        self._last_stats = {"evaluated": 0, "model_calls": 0, "batch": self._batch,
                            "path": "python"}
        r = self._r
        dy, dx = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
        self._offsets = np.stack([dx.ravel(), dy.ravel(), np.zeros(dx.size, dtype=np.int64)],
                                 axis=1).astype(np.int64)     # (p*p, 3): row dy, column dx
        self._coords = np.zeros((0, 3), dtype=np.int64)
        self._states = np.zeros((0, self._d), dtype=np.complex64)
        self._step = 0
        self._model: Optional[ModelSpec] = None
        self._clip_edge = False
        self._last_error = ""

    # ----------------------------------------------------------- attributes
    d_state = property(lambda self: self._d)
    device = property(lambda self: self._device)
    grid_size = property(lambda self: self._grid)
    background = property(lambda self: self._background)
    extent = property(lambda self: self._extent)
    threshold = property(lambda self: self._threshold)
    gamma_decay = property(lambda self: self._gamma)
    unitary = property(lambda self: self._unitary)
    seed = property(lambda self: self._seed)
    vacuum_strength = property(lambda self: self._strength)
    patch = property(lambda self: self._patch)

    def __repr__(self) -> str:
        return (f"Engine(d_state={self._d}, background={self._background!r}, extent={self._extent!r}, "
                f"grid_size={self._grid}, matter={len(self._coords)}, step={self._step})")

    # -------------------------------------------------------------- helpers
    def _in_window(self, coords: np.ndarray) -> np.ndarray:
        """(N,) bool: inside the bounded window [0, grid_size)^2 (all True when unbounded)."""
        if self._extent is None:
            return np.ones(len(coords), dtype=bool)
        g = self._grid
        return (coords[:, 0] >= 0) & (coords[:, 0] < g) & (coords[:, 1] >= 0) & (coords[:, 1] < g)

    def _background_at(self, coords: np.ndarray, step: int) -> np.ndarray:
        """Background values (N, d) at ``coords`` (assumed inside the window) at time ``step``."""
        if self._background == "zero":
            return np.zeros((len(coords), self._d), dtype=np.complex64)
        return vacuum_cells(self._seed, self._strength, self._d, coords, step)

    def _read(self, coords: np.ndarray) -> np.ndarray:
        """Field at the current step at (N, 3) coords: matter, else background; 0 outside a window."""
        out = np.zeros((len(coords), self._d), dtype=np.complex64)
        inside = self._in_window(coords)
        q = coords[inside]
        if len(q) == 0:
            return out
        codec = KeyCodec.covering(self._coords, q)
        idx = KeyIndex(codec.encode(self._coords)).find(codec.encode(q))
        vals = np.empty((len(q), self._d), dtype=np.complex64)
        got = idx >= 0
        vals[got] = self._states[idx[got]]
        if not np.all(got):
            vals[~got] = self._background_at(q[~got], self._step)
        out[inside] = vals
        return out

    def _check_window(self, coords: np.ndarray, name: str) -> None:
        if self._extent is not None and len(coords):
            bad = ~self._in_window(coords)
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                c = tuple(int(v) for v in coords[i])
                raise ValueError(f"{name}: coordinate {c} is outside the bounded window "
                                 f"[0, {self._grid})^2 (row {i})")

    def _merge(self, coords: np.ndarray, states: np.ndarray) -> None:
        """Inserts/overwrites cells like ``ath_cellmap_set_many``: existing cells are overwritten in
        place, new ones appended in order of first occurrence; a later duplicate row wins."""
        allc = np.concatenate([self._coords, coords])
        codec = KeyCodec.covering(allc)
        keys = codec.encode(allc)
        _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        inv = inv.ravel()
        # value source of each distinct key: its last occurrence in (old, new)
        last = np.full(len(first), -1, dtype=np.int64)
        last[inv] = np.arange(len(allc))          # later indices overwrite earlier ones
        alls = np.concatenate([self._states, states])
        order = np.sort(first)                    # storage order: first occurrence
        group = inv[order]
        self._coords = np.ascontiguousarray(allc[order])
        self._states = np.ascontiguousarray(alls[last[group]])

    # ---------------------------------------------------------------- model
    def set_model(self, model: Any) -> None:
        """Built-in model or a callable taking float32 (B, 2d, p, p) and returning
        (B, 2d, p, p) or (B, 2d).  None removes the model.  Memory models are refused."""
        if model is None:
            self._model = None
            return
        spec = describe_model(model)
        if spec.has_memory:
            raise ValueError("model: memory models (has_memory) are not supported by the sparse Engine; "
                             "use DenseEngine")
        if spec.channels >= 0 and spec.channels != 2 * self._d:
            raise ValueError(f"model: expects {spec.channels} channels, the engine needs 2*d_state = {2 * self._d}")
        self._exactness_warnings(spec)
        self._model = spec
        self._clip_edge = self._extent == "zero" and self._tiles_ok(spec)

    def _tiles_ok(self, spec: ModelSpec) -> bool:
        """As the C engine's tile path: built-in models and callables with accepts_tiles = True,
        with a known receptive radius <= the patch radius.  Then a cell whose patch sticks out
        of a 'zero' window gets the model run on its patch clipped to the window, so the
        model's own per-layer zero padding falls on the window edge (the dense result)."""
        if not (0 <= spec.receptive_radius <= self._r):
            return False
        if spec.kind in ("zero", "conv"):
            return True
        try:
            return bool(getattr(spec.obj, "accepts_tiles", False))
        except Exception:  # noqa: BLE001 - like the C side, an unreadable attribute means patches
            return False

    def _exactness_warnings(self, spec: ModelSpec) -> None:
        """RuntimeWarnings for the checkable exactness conditions of DESIGN §3.4 (text as in C)."""
        zp = spec.zero_preserving
        if self._background == "zero" and zp < 0:
            zp = self._probe_zero(spec)
        if self._background == "zero" and zp == 0:
            warnings.warn("Engine(background='zero'): the model is not zero-preserving (it maps an "
                          "all-zero neighbourhood to a non-zero update), so the sparse result is only "
                          "an approximation of the dense one (DESIGN 3.4 (b))", RuntimeWarning, stacklevel=3)
        if spec.receptive_radius >= 0 and spec.receptive_radius > self._r:
            warnings.warn(f"Engine(patch={self._patch}): the model's receptive radius {spec.receptive_radius} "
                          f"exceeds the patch radius {self._r}, so the sparse result is only an approximation "
                          f"of a dense evaluation; use patch >= {2 * spec.receptive_radius + 1} (DESIGN 3.4 (c))",
                          RuntimeWarning, stacklevel=3)
        if self._extent == "zero" and spec.receptive_radius > 1 and not self._tiles_ok(spec):
            warnings.warn(f"Engine(extent='zero'): the model's receptive radius {spec.receptive_radius} > 1, so near "
                          "the window edge the sparse result differs from a dense evaluation (the model's "
                          "intermediate layers are not zero-padded at the window edge) (DESIGN 3.4)",
                          RuntimeWarning, stacklevel=3)

    def _probe_zero(self, spec: ModelSpec) -> int:
        """1 if the callable maps an all-zero (1, 2d, p, p) patch to exactly zero, else 0.
        An exception (or a bad output) of the probe propagates: set_model fails."""
        p = self._patch
        out = spec.obj(np.zeros((1, 2 * self._d, p, p), dtype=np.float32))
        out = model_output(out, (1, 2 * self._d, p, p), allow_center=True)
        return 0 if np.any(out != 0) else 1

    def _run_model(self, batch: np.ndarray) -> np.ndarray:
        """Float32 (b, 2d, p, p) patches -> float32 (b, 2d) δ at the patch centres."""
        spec = self._model
        assert spec is not None
        b, c, p, r = batch.shape[0], batch.shape[1], self._patch, self._r
        if spec.kind == "zero":
            out = np.zeros((b, c), dtype=np.float32)
        elif spec.kind == "conv":
            out = spec.obj.forward_center(batch)
        else:
            out = model_output(spec.obj(batch), (b, c, p, p), allow_center=True)
            if out.ndim == 4:
                out = np.ascontiguousarray(out[:, :, r, r])
        if not np.all(np.isfinite(out)):
            name = "python-callable" if spec.kind == "callable" else spec.kind
            raise ValueError(f"model '{name}' returned non-finite values (NaN or Inf); step not applied")
        return out

    def _clip_at_edge(self, Ec: np.ndarray, batch: np.ndarray, delta: np.ndarray) -> int:
        """Re-evaluates, in place in delta, the cells of Ec whose patch sticks out of the 'zero'
        window: the model runs on the patch clipped to the window (grouped by clip), and the
        value at the cell is taken.  Returns the number of model calls."""
        spec = self._model
        assert spec is not None
        g, r, p = self._grid, self._r, self._patch
        x, y = Ec[:, 0], Ec[:, 1]
        clip = np.stack([np.maximum(r - x, 0), np.maximum(x + r - (g - 1), 0),
                         np.maximum(r - y, 0), np.maximum(y + r - (g - 1), 0)], 1)
        rows = np.flatnonzero(clip.any(1))
        if len(rows) == 0:
            return 0
        keys, inv = np.unique(clip[rows], axis=0, return_inverse=True)
        inv = inv.ravel()
        calls = 0
        for k, (left, right, top, bottom) in enumerate(keys.tolist()):
            sel = rows[inv == k]
            sub = np.ascontiguousarray(batch[sel][:, :, top: p - bottom, left: p - right])
            if spec.kind == "zero":
                out = np.zeros(sub.shape, dtype=np.float32)
            elif spec.kind == "conv":
                out = spec.obj.forward(sub)
            else:
                out = model_output(spec.obj(sub), sub.shape, allow_center=False)
            calls += 1
            val = np.ascontiguousarray(out[:, :, r - top, r - left], dtype=np.float32)
            if not np.all(np.isfinite(val)):
                name = "python-callable" if spec.kind == "callable" else spec.kind
                raise ValueError(f"model '{name}' returned non-finite values (NaN or Inf); step not applied")
            delta[sel] = val
        return calls

    # ----------------------------------------------------------------- step
    def _evaluation_set(self, M: np.ndarray, codec: KeyCodec) -> np.ndarray:
        """E: matter dilated by r in-plane through the extent, deduplicated, in Morton order."""
        cand = self._fold((M[:, None, :] + self._offsets[None, :, :]).reshape(-1, 3))
        if self._extent is None:   # cells beyond +-COORD_LIMIT are never evaluated (as the C engine)
            cand = cand[np.all(np.abs(cand[:, :2]) <= COORD_LIMIT, axis=1)]
        E = unique_rows(cand, codec)
        return np.ascontiguousarray(E[morton_order(E)])

    def _step_once(self) -> int:
        if self._model is None:
            raise RuntimeError("no model set (set_model / load_model)")
        d, r, p, t = self._d, self._r, self._patch, self._step
        M, S = self._coords, self._states
        if len(M) == 0:
            self._step += 1
            self._last_stats = {"evaluated": 0, "model_calls": 0, "batch": self._batch,
                            "path": "python"}
            return 0
        offs = self._offsets
        if self._extent is None:
            codec = KeyCodec.covering(M, margin=2 * r)
        else:
            codec = KeyCodec((0, 0, int(M[:, 2].min())), (self._grid - 1, self._grid - 1, int(M[:, 2].max())))
        E = self._evaluation_set(M, codec)
        mindex = KeyIndex(codec.encode(M))
        chunk = self._batch
        new_c: List[np.ndarray] = []
        new_s: List[np.ndarray] = []
        calls = 0
        pp = p * p
        fast = codec.packed and self._extent != "periodic"
        if fast:   # key(c + o) = key(c) + dk(o) inside the box: no need to build the patch coords
            dk = offs[:, 1] * np.int64(codec.sx) + offs[:, 0]
        for s in range(0, len(E), chunk):
            Ec = E[s: s + chunk]
            b = len(Ec)
            inside: Optional[np.ndarray] = None
            if fast:
                Q = None
                qk = (codec.encode(Ec)[:, None] + dk[None, :]).ravel()
                if self._extent == "zero":
                    g = self._grid
                    qx = Ec[:, 0][:, None] + offs[:, 0][None, :]
                    qy = Ec[:, 1][:, None] + offs[:, 1][None, :]
                    inside = ((qx >= 0) & (qx < g) & (qy >= 0) & (qy < g)).ravel()
            else:
                Q = self._fold((Ec[:, None, :] + offs[None, :, :]).reshape(-1, 3))
                qk = codec.encode(Q)
            idx = mindex.find(qk)
            if inside is not None:
                idx[~inside] = -1
            vals = S.take(np.maximum(idx, 0), axis=0)
            need = idx < 0
            if inside is not None:
                vals[~inside] = 0
                need &= inside
            if np.any(need):
                if self._background == "zero":
                    vals[need] = 0
                else:
                    f = np.flatnonzero(need)
                    _, first, inv = np.unique(qk[f], return_index=True, return_inverse=True)
                    ff = f[first]
                    qa = Q[ff] if Q is not None else Ec[ff // pp] + offs[ff % pp]
                    vals[f] = vacuum_cells(self._seed, self._strength, d, qa, t)[inv.ravel()]
            patches = vals.reshape(b, p, p, d)
            psi_c = np.ascontiguousarray(patches[:, r, r, :])
            batch = np.ascontiguousarray(
                np.concatenate([patches.real, patches.imag], axis=3).transpose(0, 3, 1, 2), dtype=np.float32)
            delta = self._run_model(batch)
            calls += 1
            if self._clip_edge:
                calls += self._clip_at_edge(Ec, batch, delta)
            new, n = apply_rule(psi_c, delta, unitary=self._unitary, gamma_decay=self._gamma)
            keep = n > self._threshold
            new_c.append(Ec[keep])
            new_s.append(new[keep])
        self._coords = np.ascontiguousarray(np.concatenate(new_c))
        self._states = np.ascontiguousarray(np.concatenate(new_s))
        self._step += 1
        self._last_stats = {"evaluated": int(len(E)), "model_calls": calls, "batch": self._batch,
                            "path": "python"}
        return len(self._coords)

    def _fold(self, coords: np.ndarray) -> np.ndarray:
        """Applies the extent to (N, 3) coords: wraps into a 'periodic' window, drops the rows
        outside a 'zero' window, leaves them alone when unbounded."""
        if self._extent is None:
            return coords
        if self._extent == "periodic":
            coords = coords.copy()
            np.mod(coords[:, :2], self._grid, out=coords[:, :2])
            return coords
        return coords[self._in_window(coords)]

    def step_native(self) -> int:
        """One step; returns the matter count.  Raises on model failure (nothing changes)."""
        try:
            return self._step_once()
        except Exception as exc:
            self._last_error = str(exc) or type(exc).__name__
            raise

    def step(self, n: int = 1) -> int:
        """n steps (all succeed or the engine is left after the last good step); matter count."""
        k = as_int(n, "n")
        if k < 0:
            raise ValueError(f"step: n must be >= 0, got {k}")
        for _ in range(k):
            self._unguarded_step_native()  # type: ignore[attr-defined]  # step holds the guard
        return len(self._coords)

    def stats(self) -> dict:
        """The last step's counters {'evaluated', 'model_calls', 'batch', 'path'} (public form of
        ``_stats``); 'path' is 'python' here (the C engine says 'leaves', 'blocks' or 'patches')."""
        return self._stats()

    def _stats(self) -> dict:
        """{'evaluated', 'model_calls', 'batch'} of the last step (private, as the C ``_stats()``)."""
        return dict(self._last_stats)

    # --------------------------------------------------------------- matter
    def add_particle(self, coord: Any, state: Any) -> None:
        """Inserts or overwrites the (d,) state at ``coord``."""
        c = np.array([parse_coord(coord, "coord")], dtype=np.int64)
        s = states_array(state, "state", -1, self._d)
        self._check_window(c, "coord")
        self._merge(c, s[None, :])

    def add_particles(self, coords: Any, states: Any) -> None:
        """(N, 3) coords, (N, d) states; all-or-nothing (later duplicates win)."""
        c = coords_array(coords, "coords")
        s = states_array(states, "states", len(c), self._d)
        self._check_window(c, "coords")
        if len(c):
            self._merge(c, s)

    def get_state_at(self, coord: Any) -> np.ndarray:
        """(d,) complex64: matter, else background; zeros outside a bounded window."""
        c = np.array([parse_coord(coord, "coord")], dtype=np.int64)
        return self._read(c)[0]

    def get_states(self, coords: Any) -> np.ndarray:
        """(N, d) complex64 field at the current step."""
        c = coords_array(coords, "coords")
        if len(c) * self._d > MAX_REGION_CELLS:
            raise ValueError("coords: too many cells for one call")
        return self._read(c)

    def matter(self) -> Tuple[np.ndarray, np.ndarray]:
        """(coords (N, 3) int64, states (N, d) complex64), copies."""
        return self._coords.copy(), self._states.copy()

    def get_matter_count(self) -> int:
        return int(len(self._coords))

    def get_step_count(self) -> int:
        return self._step

    def clear(self) -> None:
        """Removes all matter and resets the step count to 0 (the model stays)."""
        self._coords = np.zeros((0, 3), dtype=np.int64)
        self._states = np.zeros((0, self._d), dtype=np.complex64)
        self._step = 0

    def get_active_coords(self) -> np.ndarray:
        """(N, 3) int64 matter coordinates."""
        return self._coords.copy()

    def activate_neighborhood(self, coord: Any, radius: int = 1) -> None:
        """Inserts the current background at every absent cell within Chebyshev ``radius``
        of ``coord`` in its plane (clipped to a 'zero' window, wrapped into a 'periodic' one)."""
        cx, cy, cz = parse_coord(coord, "coord")
        rad = as_int(radius, "radius")
        if rad < 0:
            raise ValueError(f"radius: must be >= 0, got {rad}")
        cells = self._neighborhood(cx, cy, cz, rad)
        cells = cells[np.all(np.abs(cells) <= COORD_LIMIT, axis=1)]
        if len(cells) == 0:
            return
        codec = KeyCodec.covering(self._coords, cells)
        ck = codec.encode(cells)
        _, first = np.unique(ck, return_index=True)
        first = np.sort(first)                       # dedupe (wrapping), keep scan order
        cells, ck = cells[first], ck[first]
        absent = KeyIndex(codec.encode(self._coords)).find(ck) < 0
        cells = cells[absent]
        if len(cells):
            self._merge(cells, self._background_at(cells, self._step))

    def _neighborhood(self, cx: int, cy: int, cz: int, rad: int) -> np.ndarray:
        """The cells within Chebyshev ``rad`` of (cx, cy) that the extent lets exist, built
        from the window ∩ radius box only, so that work is bounded by what is touched;
        more than MAX_REGION_CELLS cells is a ValueError before any allocation."""
        g = self._grid
        if self._extent is None and rad > (1 << 14):
            raise ValueError(f"activate_neighborhood: radius {rad} is too large for an unbounded universe "
                             "(at most 2**14)")
        if self._extent == "periodic" and 2 * rad + 1 >= g:
            # the whole torus, in the order a full scan from -rad first meets each cell
            xs = np.mod(np.arange(cx - rad, cx - rad + g, dtype=np.int64), g)
            ys = np.mod(np.arange(cy - rad, cy - rad + g, dtype=np.int64), g)
        elif self._extent == "periodic":
            xs = np.mod(np.arange(cx - rad, cx + rad + 1, dtype=np.int64), g)
            ys = np.mod(np.arange(cy - rad, cy + rad + 1, dtype=np.int64), g)
        else:
            lo_x, hi_x = max(cx - rad, -COORD_LIMIT), min(cx + rad, COORD_LIMIT)
            lo_y, hi_y = max(cy - rad, -COORD_LIMIT), min(cy + rad, COORD_LIMIT)
            if self._extent == "zero":
                lo_x, hi_x, lo_y, hi_y = max(lo_x, 0), min(hi_x, g - 1), max(lo_y, 0), min(hi_y, g - 1)
            nx, ny = max(hi_x - lo_x + 1, 0), max(hi_y - lo_y + 1, 0)
            if nx * ny > MAX_REGION_CELLS:
                raise ValueError(f"activate_neighborhood: radius {rad} touches {nx * ny} cells "
                                 f"(max {MAX_REGION_CELLS} in one call)")
            xs = np.arange(lo_x, hi_x + 1, dtype=np.int64)
            ys = np.arange(lo_y, hi_y + 1, dtype=np.int64)
        if len(xs) * len(ys) > MAX_REGION_CELLS:
            raise ValueError(f"activate_neighborhood: radius {rad} touches {len(xs) * len(ys)} cells "
                             f"(max {MAX_REGION_CELLS} in one call)")
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, cz, dtype=np.int64)], axis=1)

    def query_radius(self, center: Any, radius: float) -> np.ndarray:
        """(N, 3) int64 matter coords with Euclidean distance <= radius (3-D), in Morton order."""
        c = np.array(parse_coord(center, "center"), dtype=np.int64)
        rad = as_float(radius, "radius", lo=0.0)
        diff = (self._coords - c[None, :]).astype(np.float64)
        mask = np.sum(diff * diff, axis=1) <= rad * rad
        res = self._coords[mask]
        return np.ascontiguousarray(res[morton_order(res)])

    # ------------------------------------------------------------ dense views
    def to_dense(self, roi: Sequence[int], z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 field over roi (x0, y0, x1, y1) in plane z, background filled in."""
        x0, y0, x1, y1 = parse_roi(roi, MAX_REGION_CELLS // self._d)
        zz = as_coord_int(z, "z")
        return self._dense(x0, y0, x1, y1, zz)

    def _dense(self, x0: int, y0: int, x1: int, y1: int, z: int) -> np.ndarray:
        h, w, d = y1 - y0, x1 - x0, self._d
        out = np.zeros((h, w, d), dtype=np.complex64)
        if h == 0 or w == 0:
            return out
        if self._background == "vacuum":
            if self._extent is None:
                out[:] = vacuum_region(self._seed, self._strength, d, x0, y0, x1, y1, z, self._step)
            else:
                g = self._grid
                ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, g), min(y1, g)
                if ix1 > ix0 and iy1 > iy0:
                    out[iy0 - y0: iy1 - y0, ix0 - x0: ix1 - x0] = vacuum_region(
                        self._seed, self._strength, d, ix0, iy0, ix1, iy1, z, self._step)
        M = self._coords
        sel = ((M[:, 2] == z) & (M[:, 0] >= x0) & (M[:, 0] < x1) & (M[:, 1] >= y0) & (M[:, 1] < y1))
        if np.any(sel):
            out[M[sel, 1] - y0, M[sel, 0] - x0] = self._states[sel]
        return out

    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, *,
                              z: int = 0, channel: int = 0) -> np.ndarray:
        """(h, w) float32 map of to_dense(roi); roi defaults to [0, grid_size)^2.
        viz_type: density | phase | energy | real | imag | gradient."""
        vt = _viz.parse_viz_type(viz_type)
        ch = as_int(channel, "channel", 0, self._d - 1)
        if roi is None:
            x0, y0, x1, y1 = 0, 0, self._grid, self._grid
            if self._grid * self._grid > MAX_REGION_CELLS // self._d:
                raise ValueError("roi: the default window [0, grid_size)^2 is too large; pass a roi")
        else:
            x0, y0, x1, y1 = parse_roi(roi, MAX_REGION_CELLS // self._d)
        zz = as_coord_int(z, "z")
        return _viz.compute(self._dense(x0, y0, x1, y1, zz), vt, ch)

"""Type stubs and API contract of atheria_core (both backends: the C
extension ``atheria_core._core`` and the pure-Python ``atheria_core._fallback``
expose exactly these names and signatures).

Conventions
-----------
* A *coord* is a ``Coord3D`` or a sequence of 2 (z = 0) or 3 ints.
* *coords* is an integer array-like of shape (N, 3) or (N, 2) (z = 0).
* A *state* is an array-like of ``d_state`` complex values; *states* (N, d).
  Returned states are NumPy complex64.  Real inputs are accepted.
* Dense fields are (H, W, d) complex64 indexed [y, x].
* ``roi`` is (x0, y0, x1, y1), half-open, in plane ``z`` (keyword, default 0).
* Bad input raises TypeError / ValueError / OverflowError naming the argument
  and changes nothing.  Non-finite states raise ValueError.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

CoordLike = Union["Coord3D", Sequence[int]]
ArrayLike = npt.ArrayLike
Callable_ = Callable[[np.ndarray], Any]

__version__: str
VERSION_MAJOR: int   # the ints of __version__ (the original module's names)
VERSION_MINOR: int
VERSION_PATCH: int

def get_version() -> str: ...
def set_num_threads(num_threads: int = ..., *, n: int = ...) -> None:
    """Threads for the engine's parallel loops (and torch intra-op, set by the package). n >= 1."""
def get_max_threads() -> int: ...
def has_openmp() -> bool: ...
def add(i: int, j: int) -> int:
    """i + j on int64; OverflowError when the sum does not fit (never wraps)."""

class Coord3D:
    x: int
    y: int
    z: int
    def __init__(self, x: int = 0, y: int = 0, z: int = 0) -> None: ...
    def __repr__(self) -> str:
        """'Coord3D(x=1, y=2, z=3)'"""
    def __eq__(self, other: object) -> bool:
        """Equal to another Coord3D with the same components (NotImplemented otherwise)."""
    def __hash__(self) -> int:
        """hash((x, y, z))"""
    def to_tuple(self) -> Tuple[int, int, int]: ...
    def __iter__(self) -> Iterator[int]: ...

class SparseMap:
    """Two maps in one object, as in the original module.

    Scalar API: int key -> float value.
    Cell API: coord -> complex64 state of length d_state; d_state is fixed by
    the first insert_tensor (or the constructor's d_state) and enforced after.
    """
    def __init__(self, d_state: Optional[int] = None) -> None: ...
    # scalar API
    def insert(self, key: int, value: float) -> None: ...
    def contains(self, key: int) -> bool: ...
    def get(self, key: int, default_value: float = 0.0) -> float: ...
    def remove(self, key: int) -> bool:
        """True if the key was present."""
    def clear(self) -> None:
        """Clears both the scalar and the cell maps."""
    def size(self) -> int:
        """Scalar entries + cells."""
    def empty(self) -> bool: ...
    def keys(self) -> list[int]:
        """Scalar keys."""
    def values(self) -> list[float]: ...
    def __len__(self) -> int: ...  # same as size()
    def __contains__(self, key: object) -> bool:
        """int -> scalar map; Coord3D / tuple -> cell map."""
    def __getitem__(self, key: int) -> float: ...  # KeyError if absent
    def __setitem__(self, key: int, value: float) -> None: ...
    def __delitem__(self, key: int) -> None: ...  # KeyError if absent
    # cell API
    @property
    def d_state(self) -> Optional[int]: ...
    def insert_tensor(self, coord: CoordLike, tensor: ArrayLike = ..., *, state: ArrayLike = ...) -> None:
        """Stores a (d_state,) state; give it once, as ``tensor`` (the original keyword) or ``state``."""
    def contains_coord(self, coord: CoordLike) -> bool: ...
    def get_tensor(self, coord: CoordLike) -> np.ndarray:
        """(d,) complex64 copy; KeyError if absent."""
    def remove_coord(self, coord: CoordLike) -> bool: ...
    def coord_keys(self) -> list[Coord3D]: ...
    def cell_count(self) -> int: ...
    # bulk
    def insert_many(self, coords: ArrayLike, states: ArrayLike) -> None:
        """(N,3) coords, (N,d) states; all-or-nothing."""
    def get_many(self, coords: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        """-> (states (N,d) complex64 with zeros where absent, found (N,) bool)."""
    def cells(self) -> Tuple[np.ndarray, np.ndarray]:
        """-> (coords (N,3) int64, states (N,d) complex64), storage order."""

class HarmonicVacuum:
    d_state: int      # read-only
    seed: int         # read-only, 0 <= seed < 2**64
    strength: float   # read-only, finite, >= 0
    def __init__(self, d_state: int, seed: int = 0, strength: float = 0.1) -> None: ...
    def get_fluctuation(self, coord: CoordLike, step: int = 0) -> np.ndarray:
        """(d,) complex64."""
    def region(self, roi: Sequence[int], step: int = 0, z: int = 0) -> np.ndarray:
        """(y1-y0, x1-x0, d) complex64."""
    def cells(self, coords: ArrayLike, step: int = 0) -> np.ndarray:
        """(N, d) complex64 for (N,3) coords."""

class ZeroModel:
    """delta = 0 for every input."""
    def __init__(self) -> None: ...
    receptive_radius: int  # 0
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Float32 (B, C, H, W) -> zeros of the same shape (for inspection/tests)."""

class ConvModel:
    """Stack of 2-D convolutions = torch.nn.Conv2d(in, out, k, padding=k//2) layers,
    activation ('relu' | 'tanh' | 'gelu' | 'identity') between layers, none after the last."""
    def __init__(self, weights: Sequence[ArrayLike], biases: Optional[Sequence[Optional[ArrayLike]]] = None,
                 activation: str = "relu") -> None: ...
    receptive_radius: int   # sum of k//2 over layers
    channels: int           # in-channels of the first layer (= 2 * d_state)
    n_layers: int
    activation: str
    zero_preserving: bool   # True when every bias is absent or zero
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Float32 (B, C, H, W) -> (B, C, H, W), zero padding per layer."""

Model = Union[ZeroModel, ConvModel, Callable_]

class Engine:
    """Sparse universe (DESIGN §3)."""
    def __init__(self, d_state: int, device: str = "cpu", grid_size: int = 64, *,
                 background: str = "vacuum", extent: Optional[str] = None,
                 threshold: float = 0.01, gamma_decay: float = 0.0, unitary: bool = False,
                 seed: int = 0, vacuum_strength: float = 0.1, patch: int = 3) -> None: ...
    # read-only attributes mirroring the constructor
    d_state: int
    device: str
    grid_size: int
    background: str            # 'vacuum' | 'zero'
    extent: Optional[str]      # None | 'zero' | 'periodic'
    threshold: float
    gamma_decay: float
    unitary: bool
    seed: int
    vacuum_strength: float
    patch: int
    # original API
    def load_model(self, path: str = ..., model_path: str = ...) -> bool:
        """Loads a TorchScript file or .pt2 package (exactly one of path / model_path; the route is
        chosen by atheria_core._model_loader, docs/torchscript.md); False + get_last_error()
        "<file>: <cause>" on failure (engine unchanged); KeyboardInterrupt/SystemExit propagate."""
    def add_particle(self, coord: CoordLike, state: ArrayLike) -> None: ...
    def get_state_at(self, coord: CoordLike) -> np.ndarray:
        """(d,) complex64: matter, else background; zeros outside a bounded window."""
    def step_native(self) -> int:
        """One step; returns the matter count. Raises on model failure (nothing changes)."""
    def get_matter_count(self) -> int: ...
    def get_step_count(self) -> int: ...
    def clear(self) -> None: ...
    def activate_neighborhood(self, coord: CoordLike, radius: int = 1) -> None: ...
    def get_active_coords(self) -> np.ndarray:
        """(N, 3) int64 matter coordinates."""
    def get_last_error(self) -> str:
        """Message of the last failed load_model / step ('' if none)."""
    def query_radius(self, center: CoordLike, radius: float) -> np.ndarray:
        """(N, 3) int64 matter coords with Euclidean distance <= radius."""
    def stats(self) -> dict:
        """Last step: evaluated, model_calls, batch; C backend also matter_bytes, scratch_bytes,
        memory_bytes, stored_cells (the engine's own heap, bytes)."""
    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, *,
                              z: int = 0, channel: int = 0) -> np.ndarray:
        """(h, w) float32 map of to_dense(roi); roi defaults to the window [0, grid_size)^2
        (also for unbounded engines).  viz_type: density|phase|energy|real|imag|gradient, or the
        original module's holographic (h, w, 3) and holographic_bulk (5, h, w) (include/atheria/viz.h)."""
    # new API
    def set_model(self, model: Optional[Model]) -> None:
        """Built-in model or a callable taking float32 (B, 2d, p, p) and returning
        (B, 2d, p, p) or (B, 2d).  None removes the model."""
    def has_model(self) -> bool: ...
    def add_particles(self, coords: ArrayLike, states: ArrayLike) -> None: ...
    def get_states(self, coords: ArrayLike) -> np.ndarray: ...
    def matter(self) -> Tuple[np.ndarray, np.ndarray]:
        """(coords (N,3) int64, states (N,d) complex64)."""
    def to_dense(self, roi: Sequence[int], z: int = 0) -> np.ndarray:
        """(h, w, d) complex64 with the background filled in."""
    def step(self, n: int = 1) -> int:
        """n steps (all succeed or the engine is left after the last good step); matter count."""

class DenseEngine:
    def __init__(self, grid_size: int, d_state: int, device: str = "cpu", *,
                 gamma_decay: float = 0.0, unitary: bool = False, seed: int = 0,
                 vacuum_strength: float = 0.1, extent: str = "zero") -> None: ...
    grid_size: int
    d_state: int
    device: str
    gamma_decay: float
    unitary: bool
    seed: int
    vacuum_strength: float
    extent: str                # 'zero' | 'periodic'
    def load_model(self, path: str = ..., model_path: str = ...) -> bool: ...
    def get_last_error(self) -> str: ...
    def set_model(self, model: Optional[Model]) -> None:
        """Callables get the whole float32 (1, 2d, H, W) field and return (1, 2d, H, W)."""
    def has_model(self) -> bool: ...
    def step(self, n: int = 1) -> None: ...
    def get_state(self) -> np.ndarray:
        """(H, W, d) complex64 copy."""
    def set_state(self, psi: ArrayLike) -> None:
        """(H, W, d) or (1, H, W, d)."""
    def get_step_count(self) -> int: ...
    def clear(self) -> None:
        """Back to the vacuum at step 0, step count 0, memory reset."""
    def apply_tool(self, action: str, params: Optional[dict] = None) -> None:
        """docs/tools.md"""
    def compute_visualization(self, viz_type: str, roi: Optional[Sequence[int]] = None, *,
                              channel: int = 0) -> np.ndarray:
        """As Engine.compute_visualization over the grid (roi inside [0, grid_size)^2)."""
    def generate_bulk_state(self, base_field: ArrayLike, depth: int) -> np.ndarray:
        """Real (H, W), (C, H, W) or (1, C, H, W) -> (1, depth*C, H, W) float32: layer l
        (channels l*C .. l*C+C-1) is the field blurred l times with [[1,2,1],[2,4,2],[1,2,1]]/16,
        zero padding 1, per channel (torch grouped conv).  depth >= 1.  Reads only base_field."""

# --- snapshots, ROI matter and analysis (src/python/py_snapshot.c; used by atheria_core._engines)
def _set_step_count(engine: Union[Engine, DenseEngine], step: int) -> None: ...
def _matter_in_roi(engine: Engine, roi: Optional[Sequence[int]] = None, z: int = 0) -> Tuple[np.ndarray, np.ndarray]: ...
def _analyze(engine: Union[Engine, DenseEngine], roi: Optional[Sequence[int]] = None, z: int = 0) -> dict: ...
def _model_object(engine: Union[Engine, DenseEngine]) -> object: ...
def _capsule_memory_get(model: object) -> Optional[np.ndarray]: ...
def _capsule_memory_set(model: object, flat: np.ndarray) -> None: ...
def _snapshot_encode(meta_json: bytes, arrays: Sequence[Tuple[str, np.ndarray]]) -> bytes: ...
def _snapshot_decode(data: bytes, source: str) -> Tuple[bool, object, object]: ...
def _snapshot_write_file(path: str, data: bytes) -> None: ...


# private model-loading primitives (py_torch.c; used by atheria_core._model_loader / _torch_support)
def _set_model_loader(loader: Optional[Callable[[Any, str], Any]]) -> None: ...
def _load_error_kinds() -> Tuple[Tuple[str, str], ...]: ...
def _torch_load2(shim_path: str, model_path: str, device: str = "cpu", has_memory: int = -1,
                 receptive_radius: int = -1, zero_preserving: int = -1, channels: int = -1,
                 optimize: bool = True, probe_shape: Optional[Sequence[int]] = None) -> Tuple[Any, bool, str]: ...
def _aoti_load(shim_path: str, model_path: str, device: str, input_shape: Sequence[int],
               memory_shape: Optional[Sequence[int]] = None, receptive_radius: int = -1,
               zero_preserving: int = -1) -> Any: ...

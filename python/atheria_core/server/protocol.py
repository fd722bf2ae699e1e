"""Wire format of the live server: binary frames (server -> client) and JSON control
messages (client -> server, over ``POST /api/control`` and ``/ws``).

Frame (one binary WebSocket message), little-endian, a 48-byte header then the payload::

    offset size type  field
    0      4    4s    magic b"ATHF"
    4      1    u8    version (FRAME_VERSION = 1)
    5      1    u8    channels: 1 = scalar map, 3 = RGB (e.g. holographic)
    6      1    u8    viz index into ``status["viz_types"]``
    7      1    u8    stride: the payload samples every stride-th cell of the ROI
    8      8    u64   simulation step
    16     4    u32   x0  (ROI origin, cells)
    20     4    u32   y0
    24     4    u32   width  (payload columns)
    28     4    u32   height (payload rows)
    32     4    f32   min of the payload
    36     4    f32   max of the payload
    40     4    u32   frame sequence number (per server, wraps)
    44     4    u32   reserved (0)
    48     ...  f32   payload, height x width x channels, row-major [y][x][c]

The payload starts at a multiple of 4, so a browser reads it with
``new Float32Array(buffer, 48, width * height * channels)``.

Control messages are JSON objects ``{"action": ..., ...}`` (``parse_control``).
Every field is checked (type, size, range); a bad message raises
:class:`ProtocolError`, which the server answers with ``{"type": "error", ...}``
without changing anything.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "FRAME_MAGIC", "FRAME_VERSION", "FRAME_HEADER", "FRAME_HEADER_SIZE", "MAX_MESSAGE_BYTES",
    "MAX_STEPS_PER_REQUEST", "MAX_FRAME_SIDE", "ACTIONS", "ENGINES", "TOOLS",
    "ProtocolError", "Command", "View", "encode_frame", "decode_frame", "parse_control",
    "parse_json_message", "parse_view", "as_frame_array",
]

FRAME_MAGIC = b"ATHF"
FRAME_VERSION = 1
FRAME_HEADER = struct.Struct("<4sBBBBQIIIIffII")
FRAME_HEADER_SIZE = FRAME_HEADER.size
assert FRAME_HEADER_SIZE == 48
#: largest control message accepted (bytes of UTF-8 JSON)
MAX_MESSAGE_BYTES = 16 * 1024
#: most steps one "step" request may ask for
MAX_STEPS_PER_REQUEST = 1000
#: frames wider or taller than this (cells) are sampled with an integer stride
MAX_FRAME_SIDE = 512
ENGINES = ("native", "python")
TOOLS = ("collapse", "vortex", "wave")
#: action -> allowed keys besides "action" and "id"
ACTIONS: Dict[str, Tuple[str, ...]] = {
    "play": (),
    "pause": (),
    "step": ("n",),
    "reset": (),
    "load": ("experiment", "engine"),
    "engine": ("engine",),
    "tool": ("tool", "params"),
    "view": ("viz", "roi", "channel"),
    "snapshot_save": (),
    "snapshot_load": ("name",),
    "rewind": ("n",),
}
#: actions that only make sense on a WebSocket (they set that client's view)
WS_ONLY_ACTIONS = ("view",)
_TOOL_KEYS = ("x", "y", "radius", "strength", "angle")
_MAX_ABS_PARAM = 1e6


class ProtocolError(ValueError):
    """A control message that is malformed, unknown or out of range (nothing was changed)."""


@dataclass(frozen=True)
class View:
    """What one client looks at: visualisation, ROI (x0, y0, x1, y1) or None (whole grid), channel."""

    viz: str = "density"
    roi: Optional[Tuple[int, int, int, int]] = None
    channel: int = 0


@dataclass
class Command:
    """A validated control message."""

    action: str
    args: Dict[str, Any] = field(default_factory=dict)
    id: Any = None


# --------------------------------------------------------------------------- frames
def encode_frame(data: np.ndarray, *, step: int, x0: int, y0: int, viz_index: int, stride: int = 1,
                 seq: int = 0) -> bytes:
    """One binary frame from a (h, w) scalar map or an (h, w, 3) RGB map (any real dtype)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        channels = 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        channels = 3
    else:
        raise ValueError(f"frame data must be (h, w) or (h, w, 3), got shape {arr.shape}")
    payload = np.ascontiguousarray(arr, dtype="<f4")
    if payload.size:
        finite = payload[np.isfinite(payload)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
    else:
        lo = hi = 0.0
    h, w = arr.shape[0], arr.shape[1]
    header = FRAME_HEADER.pack(FRAME_MAGIC, FRAME_VERSION, channels, int(viz_index) & 0xFF,
                               int(stride) & 0xFF, int(step) & ((1 << 64) - 1), int(x0), int(y0),
                               int(w), int(h), lo, hi, int(seq) & 0xFFFFFFFF, 0)
    return header + payload.tobytes()


def as_frame_array(data: np.ndarray, layer: int = 0) -> np.ndarray:
    """A visualisation payload as frame data: (h, w) scalar or (h, w, 3) RGB as they are; a layered
    (L, h, w) map with L != 3 (e.g. ``holographic_bulk``) as its layer ``min(layer, L - 1)``."""
    arr = np.asarray(data)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        return arr
    if arr.ndim == 3:
        return arr[min(max(int(layer), 0), arr.shape[0] - 1)]
    raise ValueError(f"cannot show a visualisation of shape {arr.shape} (expected (h, w), (h, w, 3) or (L, h, w))")


def decode_frame(buf: bytes) -> Dict[str, Any]:
    """Inverse of :func:`encode_frame` (used by tests and Python clients)."""
    if len(buf) < FRAME_HEADER_SIZE:
        raise ValueError(f"frame shorter than its {FRAME_HEADER_SIZE}-byte header ({len(buf)} bytes)")
    (magic, version, channels, viz, stride, step, x0, y0, w, h, lo, hi, seq,
     _reserved) = FRAME_HEADER.unpack_from(buf, 0)
    if magic != FRAME_MAGIC or version != FRAME_VERSION:
        raise ValueError(f"not an atheria frame (magic {magic!r}, version {version})")
    n = w * h * channels
    if len(buf) != FRAME_HEADER_SIZE + 4 * n:
        raise ValueError(f"frame payload is {len(buf) - FRAME_HEADER_SIZE} bytes, header says {4 * n}")
    data = np.frombuffer(buf, dtype="<f4", count=n, offset=FRAME_HEADER_SIZE)
    data = data.reshape((h, w) if channels == 1 else (h, w, channels))
    return {"channels": channels, "viz_index": viz, "stride": stride, "step": step, "x0": x0, "y0": y0,
            "width": w, "height": h, "min": lo, "max": hi, "seq": seq, "data": data}


# --------------------------------------------------------------------------- control messages
def parse_json_message(text: Any) -> Mapping[str, Any]:
    """Decodes one message (str or bytes of UTF-8 JSON, at most MAX_MESSAGE_BYTES) into a dict."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message is {len(text)} bytes; the limit is {MAX_MESSAGE_BYTES}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message is not valid UTF-8") from None
    if not isinstance(text, str):
        raise ProtocolError(f"message must be JSON text, got {type(text).__name__}")
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message is longer than the limit of {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(obj).__name__}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"message contains the non-finite number {name}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_in(msg: Mapping[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    if key not in msg:
        return default
    v = msg[key]
    if not _is_int(v) or not lo <= v <= hi:
        raise ProtocolError(f"{key!r} must be an int in [{lo}, {hi}], got {v!r}")
    return int(v)


def _short_str(msg: Mapping[str, Any], key: str, max_len: int = 128) -> str:
    if key not in msg:
        raise ProtocolError(f"{key!r} is required")
    v = msg[key]
    if not isinstance(v, str) or not 0 < len(v) <= max_len:
        raise ProtocolError(f"{key!r} must be a non-empty string of at most {max_len} characters, got {v!r:.80}")
    return v


def parse_view(msg: Mapping[str, Any], viz_types: Sequence[str], grid_size: int, d_state: int) -> View:
    """The ``view`` message: ``viz`` in viz_types, ``roi`` null or 4 ints inside the grid, ``channel``."""
    viz = msg.get("viz", "density")
    if not isinstance(viz, str) or viz not in viz_types:
        raise ProtocolError(f"'viz' must be one of {list(viz_types)}, got {viz!r:.80}")
    roi = msg.get("roi")
    if roi is not None:
        if not isinstance(roi, list) or len(roi) != 4 or not all(_is_int(v) for v in roi):
            raise ProtocolError(f"'roi' must be null or [x0, y0, x1, y1] ints, got {roi!r:.80}")
        x0, y0, x1, y1 = roi
        if not (0 <= x0 < x1 <= grid_size and 0 <= y0 < y1 <= grid_size):
            raise ProtocolError(f"'roi' {roi} must satisfy 0 <= x0 < x1 <= {grid_size} and "
                                f"0 <= y0 < y1 <= {grid_size}")
        roi = (x0, y0, x1, y1)
    channel = _int_in(msg, "channel", 0, max_channel(viz, d_state), 0)
    return View(viz=viz, roi=roi, channel=channel)


#: Layers of the ``holographic_bulk`` stack (density, then 4 blurs).
BULK_LAYERS = 5


def max_channel(viz: str, d_state: int) -> int:
    """Largest valid ``channel`` of a view: the layer of ``holographic_bulk``, else the state channel."""
    return BULK_LAYERS - 1 if viz == "holographic_bulk" else max(0, d_state - 1)


def parse_control(msg: Mapping[str, Any], *, experiments: Sequence[str] = (), grid_size: int = 0,
                  viz_types: Sequence[str] = (), d_state: int = 1) -> Command:
    """Validates one control message (already a dict) into a :class:`Command`.

    Args:
        msg: the decoded JSON object.
        experiments: names that ``load`` accepts (those under ``--root``).
        grid_size: the running experiment's grid side (bounds ``tool`` x/y and ``view`` roi).
        viz_types: names that ``view`` accepts.
        d_state: channels of the running experiment (bounds ``view`` channel).

    Raises:
        ProtocolError: unknown action, unknown key, wrong type or out-of-range value.
    """
    if not isinstance(msg, Mapping):
        raise ProtocolError(f"message must be a JSON object, got {type(msg).__name__}")
    action = msg.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise ProtocolError(f"'action' must be one of {sorted(ACTIONS)}, got {action!r:.80}")
    allowed = set(ACTIONS[action]) | {"action", "id"}
    extra = [k for k in msg if k not in allowed]
    if extra:
        raise ProtocolError(f"unknown key(s) for {action!r}: {sorted(map(str, extra))[:8]}")
    mid = msg.get("id")
    if mid is not None and not (_is_int(mid) and abs(mid) < 2 ** 53) and \
            not (isinstance(mid, str) and len(mid) <= 64):
        raise ProtocolError("'id' must be an int or a string of at most 64 characters")
    args: Dict[str, Any] = {}
    if action in ("step", "rewind"):
        args["n"] = _int_in(msg, "n", 1, MAX_STEPS_PER_REQUEST, 1)
    elif action == "load":
        name = _short_str(msg, "experiment")
        if name not in experiments:
            raise ProtocolError(f"unknown experiment {name!r:.80}; available: {list(experiments)[:20]}")
        args["experiment"] = name
        if "engine" in msg:
            args["engine"] = _engine(msg)
    elif action == "engine":
        args["engine"] = _engine(msg)
    elif action == "tool":
        tool = msg.get("tool")
        if not isinstance(tool, str) or tool not in TOOLS:
            raise ProtocolError(f"'tool' must be one of {list(TOOLS)}, got {tool!r:.80}")
        args["tool"] = tool
        args["params"] = _tool_params(msg.get("params", {}), tool, grid_size)
    elif action == "view":
        args["view"] = parse_view(msg, viz_types, grid_size, d_state)
    elif action == "snapshot_load":
        name = _short_str(msg, "name", 64)
        if not all(c.isalnum() or c in "_-." for c in name) or name.startswith("."):
            raise ProtocolError(f"'name' must be a snapshot name (letters, digits, '_', '-', '.'), got {name!r}")
        args["name"] = name
    return Command(action=action, args=args, id=mid)


def _engine(msg: Mapping[str, Any]) -> str:
    v = msg.get("engine")
    if not isinstance(v, str) or v not in ENGINES:
        raise ProtocolError(f"'engine' must be one of {list(ENGINES)}, got {v!r:.80}")
    return v


def _tool_params(params: Any, tool: str, grid_size: int) -> Dict[str, float]:
    if not isinstance(params, dict):
        raise ProtocolError(f"'params' must be an object, got {type(params).__name__}")
    out: Dict[str, float] = {}
    for key, v in params.items():
        if key not in _TOOL_KEYS:
            raise ProtocolError(f"unknown tool parameter {key!r:.40}; expected {list(_TOOL_KEYS)}")
        if not _is_num(v) or not math.isfinite(float(v)) or abs(float(v)) > _MAX_ABS_PARAM:
            raise ProtocolError(f"tool parameter {key!r} must be a finite number, got {v!r:.40}")
        out[key] = float(v)
    for key in ("x", "y"):
        if key in out and not 0 <= out[key] < max(grid_size, 1):
            raise ProtocolError(f"tool parameter {key!r} must be in [0, {grid_size}), got {out[key]}")
    if "radius" in out and not 0 < out["radius"] <= max(grid_size, 1):
        raise ProtocolError(f"tool parameter 'radius' must be in (0, {grid_size}], got {out['radius']}")
    if tool == "collapse" and "strength" in out and not 0.0 <= out["strength"] <= 1.0:
        raise ProtocolError(f"collapse strength must be in [0, 1], got {out['strength']}")
    return out

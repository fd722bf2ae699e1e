"""Built-in models (``ZeroModel``, ``ConvModel``) and the adapter the engines use to call any model.

A model maps a float32 batch (B, 2·d, H, W) — channels Re ψ₀…Re ψ_{d-1}, then
Im ψ₀…Im ψ_{d-1} — to an update δ of the same layout.
"""
from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger("atheria_core._fallback")

ACTIVATIONS = ("relu", "tanh", "gelu", "identity")
#: im2col budget of one ConvModel layer call, in float32 values (bounds memory).
_IM2COL_BUDGET = 1 << 23


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function of a float64 array (exact: libm erf through torch when loaded, else math.erf)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        except Exception:  # noqa: BLE001 - any torch trouble: use the exact slow path
            pass
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def _activate(x: np.ndarray, activation: str) -> np.ndarray:
    """Activation between layers, float32 in, float32 out."""
    if activation == "relu":
        return np.maximum(x, np.float32(0.0))
    if activation == "tanh":
        return np.tanh(x)
    if activation == "gelu":
        xd = x.astype(np.float64)
        return (0.5 * xd * (1.0 + _erf(xd / math.sqrt(2.0)))).astype(np.float32)
    return x


def to_float32(obj: Any, name: str) -> np.ndarray:
    """Array-like (NumPy, list, torch tensor, also one that requires grad) -> new C-contiguous
    float32 array.  Complex, bool and non-numeric inputs -> TypeError."""
    if not isinstance(obj, np.ndarray) and hasattr(obj, "detach") and hasattr(obj, "cpu"):
        try:
            obj = obj.detach().cpu().numpy()
        except Exception:  # noqa: BLE001
            raise TypeError(f"{name}: expected a float array-like, got {type(obj).__name__}") from None
    try:
        raw = np.asarray(obj)
    except Exception:  # noqa: BLE001 - ragged lists
        raise TypeError(f"{name}: expected a float array-like, got {type(obj).__name__}") from None
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected a real (float) array, got dtype {raw.dtype}")
    return np.array(raw, dtype=np.float32, copy=True, order="C")


class ZeroModel:
    """δ = 0 for every input (receptive_radius 0, zero-preserving)."""

    def __init__(self) -> None:
        pass

    @property
    def receptive_radius(self) -> int:
        """0: δ at a cell depends on nothing."""
        return 0

    @property
    def zero_preserving(self) -> bool:
        return True

    @property
    def has_memory(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ZeroModel()"

    def __call__(self, batch: Any) -> np.ndarray:
        """Float32 (B, C, H, W) -> zeros of the same shape."""
        arr = to_float32(batch, "batch")
        if arr.ndim != 4:
            raise ValueError(f"batch: expected shape (B, C, H, W), got ndim={arr.ndim}")
        return np.zeros(arr.shape, dtype=np.float32)


class ConvModel:
    """Stack of 2-D convolutions = ``torch.nn.Conv2d(in, out, k, padding=k//2)`` layers.

    weights[i]: (out_i, in_i, k_i, k_i) with odd k_i; biases[i]: (out_i,) or None;
    ``activation`` ('relu' | 'tanh' | 'gelu' | 'identity') between layers, none after
    the last.  in_0 == out_last == channels (= 2·d_state).  Data is copied (float32).
    """

    def __init__(self, weights: Sequence[Any], biases: Optional[Sequence[Optional[Any]]] = None,
                 activation: str = "relu") -> None:
        if not isinstance(activation, str):
            raise TypeError(f"activation: expected a str, got {type(activation).__name__}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {list(ACTIVATIONS)}, got {activation!r}")
        if isinstance(weights, (str, bytes, np.ndarray)) or not isinstance(weights, Sequence) \
                and not hasattr(weights, "__getitem__"):
            raise TypeError("weights: expected a sequence of 4-D arrays (out, in, k, k)")
        try:
            wlist = list(weights)
        except TypeError:
            raise TypeError("weights: expected a sequence of 4-D arrays (out, in, k, k)") from None
        if not 1 <= len(wlist) <= 1024:
            raise ValueError(f"weights: expected 1 to 1024 layers, got {len(wlist)}")
        if biases is None:
            blist: List[Any] = [None] * len(wlist)
        else:
            if isinstance(biases, (str, bytes, np.ndarray)):
                raise TypeError("biases: expected None or a sequence of 1-D arrays / None")
            try:
                blist = list(biases)
            except TypeError:
                raise TypeError("biases: expected a sequence of (out,) arrays or None") from None
            if len(blist) != len(wlist):
                raise ValueError(f"biases: expected {len(wlist)} entries (one per layer), got {len(blist)}")
        self._w: List[np.ndarray] = []
        self._b: List[Optional[np.ndarray]] = []
        prev_out: Optional[int] = None
        for i, (w, b) in enumerate(zip(wlist, blist)):
            name = f"weights[{i}]"
            wa = self._float_array(w, name)
            if wa.ndim != 4:
                raise ValueError(f"{name}: expected shape (out, in, k, k), got {wa.shape}")
            o, c, kh, kw = wa.shape
            if kh != kw or kh % 2 != 1:
                raise ValueError(f"{name}: kernel must be square with odd size, got {kh}x{kw}")
            if o < 1 or c < 1:
                raise ValueError(f"{name}: expected out >= 1 and in >= 1, got {wa.shape}")
            if prev_out is not None and c != prev_out:
                raise ValueError(f"{name}: in_channels {c} != out_channels {prev_out} of layer {i - 1}")
            prev_out = o
            ba: Optional[np.ndarray] = None
            if b is not None:
                ba = self._float_array(b, f"biases[{i}]")
                if ba.shape != (o,):
                    raise ValueError(f"biases[{i}]: expected shape ({o},), got {ba.shape}")
            self._w.append(wa)
            self._b.append(ba)
        if self._w[0].shape[1] != self._w[-1].shape[0]:
            raise ValueError(f"weights: first layer in_channels {self._w[0].shape[1]} != last layer "
                             f"out_channels {self._w[-1].shape[0]}")
        self._activation = activation
        self._radius = int(sum(w.shape[2] // 2 for w in self._w))
        self._zero_preserving = all(b is None or not np.any(b) for b in self._b)

    @staticmethod
    def _float_array(obj: Any, name: str) -> np.ndarray:
        arr = to_float32(obj, name)
        if arr.size and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: non-finite value (NaN or Inf)")
        return arr

    # ------------------------------------------------------------ attributes
    @property
    def receptive_radius(self) -> int:
        """Sum of k//2 over layers (cells)."""
        return self._radius

    @property
    def channels(self) -> int:
        """In-channels of the first layer (= 2·d_state)."""
        return int(self._w[0].shape[1])

    @property
    def n_layers(self) -> int:
        return len(self._w)

    @property
    def activation(self) -> str:
        return self._activation

    @property
    def zero_preserving(self) -> bool:
        """True when every bias is absent or zero."""
        return self._zero_preserving

    @property
    def has_memory(self) -> bool:
        return False

    @property
    def weights(self) -> List[np.ndarray]:
        """Copies of the float32 weights, one (out, in, k, k) array per layer."""
        return [w.copy() for w in self._w]

    @property
    def biases(self) -> List[Optional[np.ndarray]]:
        """Copies of the float32 biases (None where absent)."""
        return [None if b is None else b.copy() for b in self._b]

    def __repr__(self) -> str:
        return (f"ConvModel(n_layers={self.n_layers}, channels={self.channels}, "
                f"receptive_radius={self._radius}, activation={self._activation!r})")

    # ----------------------------------------------------------- evaluation
    def __call__(self, batch: Any) -> np.ndarray:
        """Float32 (B, C, H, W) -> (B, C, H, W), zero padding k//2 per layer."""
        arr = to_float32(batch, "batch")
        if arr.ndim != 4 or arr.shape[1] != self.channels:
            raise ValueError(f"batch: expected shape (B, {self.channels}, H, W), got {arr.shape}")
        if arr.size > (1 << 31):
            raise ValueError("batch: too large (more than 2**31 values)")
        if arr.size == 0:
            return np.empty(arr.shape, dtype=np.float32)
        return self.forward(arr)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float32 (B, C, H, W) -> float32 (B, C, H, W), zero padding k//2 at every layer."""
        n = len(self._w)
        for i, (w, b) in enumerate(zip(self._w, self._b)):
            x = _conv2d(x, w, b)
            if i + 1 < n:
                x = _activate(x, self._activation)
        return x


    def forward_center(self, x: np.ndarray) -> np.ndarray:
        """Float32 (B, C, P, P) patches, P odd -> float32 (B, C): the output at the patch centres.

        With receptive_radius R <= (P-1)/2 the centre never sees the patch border, so it is
        computed with unpadded ("valid") convolutions on the central (2R+1)^2 crop — the
        same value as ``forward(x)[:, :, P//2, P//2]`` at a fraction of the cost.
        """
        p = x.shape[2]
        rr = self._radius
        if rr > p // 2:
            return np.ascontiguousarray(self.forward(x)[:, :, p // 2, p // 2])
        c0 = p // 2 - rr
        y = x[:, :, c0: c0 + 2 * rr + 1, c0: c0 + 2 * rr + 1]
        n = len(self._w)
        for i, (w, b) in enumerate(zip(self._w, self._b)):
            y = _conv2d_valid(y, w, b)
            if i + 1 < n:
                y = _activate(y, self._activation)
        return np.ascontiguousarray(y[:, :, 0, 0])


def _conv2d_valid(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    """Unpadded cross-correlation: float32 (B, C, H, W) -> (B, O, H-k+1, W-k+1)."""
    bsz, c, h, wd = x.shape
    o, _, k, _ = w.shape
    ho, wo = h - k + 1, wd - k + 1
    out = np.empty((bsz, o, ho, wo), dtype=np.float32)
    wmat = w.reshape(o, c * k * k)
    per_item = max(1, ho * wo * c * k * k)
    step = max(1, _IM2COL_BUDGET // per_item)
    for s in range(0, bsz, step):
        e = min(bsz, s + step)
        if k == 1:
            cols = x[s:e].transpose(0, 2, 3, 1).reshape((e - s) * ho * wo, c)
        else:
            win = np.lib.stride_tricks.sliding_window_view(x[s:e], (k, k), axis=(2, 3))  # (b, C, ho, wo, k, k)
            cols = win.transpose(0, 2, 3, 1, 4, 5).reshape((e - s) * ho * wo, c * k * k)
        out[s:e] = (cols @ wmat.T).reshape(e - s, ho, wo, o).transpose(0, 3, 1, 2)
    if b is not None:
        out += b[None, :, None, None]
    return out


def _conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    """torch.nn.Conv2d(padding=k//2) on float32 (B, C, H, W) (cross-correlation), float32 out."""
    bsz, c, h, wd = x.shape
    o, _, k, _ = w.shape
    r = k // 2
    if r:
        xp = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="constant")
    else:
        xp = x
    out = np.empty((bsz, o, h, wd), dtype=np.float32)
    wmat = w.reshape(o, c * k * k)
    per_item = max(1, h * wd * c * k * k)
    step = max(1, _IM2COL_BUDGET // per_item)
    for s in range(0, bsz, step):
        e = min(bsz, s + step)
        win = np.lib.stride_tricks.sliding_window_view(xp[s:e], (k, k), axis=(2, 3))  # (b, C, H, W, k, k)
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape((e - s) * h * wd, c * k * k)
        res = cols @ wmat.T                                                          # (b*H*W, O)
        out[s:e] = res.reshape(e - s, h, wd, o).transpose(0, 3, 1, 2)
    if b is not None:
        out += b[None, :, None, None]
    return out


# ------------------------------------------------------------------ adapter
@dataclass
class ModelSpec:
    """What an engine knows about its model (the Python side of the C ``ath_model``).

    kind: 'zero' | 'conv' | 'callable'; channels: 2·d it expects (-1 unknown: callables);
    receptive_radius: cells (-1 unknown); zero_preserving: 1 / 0 / -1 (unknown: the engine
    probes); has_memory: ConvLSTM-style callable with commit/discard/reset_memory.
    """

    obj: Any
    kind: str
    channels: int
    receptive_radius: int
    zero_preserving: int
    has_memory: bool

    def _memory_call(self, name: str) -> None:
        # Like the C adapter: a failing memory method is reported, never raised.
        if not self.has_memory:
            return
        try:
            getattr(self.obj, name)()
        except Exception:  # noqa: BLE001
            logger.exception("model.%s() failed", name)

    def commit(self) -> None:
        self._memory_call("commit_memory")

    def discard(self) -> None:
        self._memory_call("discard_memory")

    def reset(self) -> None:
        self._memory_call("reset_memory")


def describe_model(model: Any) -> ModelSpec:
    """ModelSpec of a built-in model or a callable (attributes read like the C adapter):

    * ``receptive_radius``: an int in [0, 2**20], or None / -1 for unknown (TypeError /
      ValueError otherwise);
    * ``zero_preserving``, ``has_memory``: truthiness (None = unknown / False);
    * ``has_memory`` needs callable commit_memory / discard_memory / reset_memory (ValueError).
    Anything that is not callable -> TypeError.
    """
    if isinstance(model, ZeroModel):
        return ModelSpec(model, "zero", -1, 0, 1, False)
    if isinstance(model, ConvModel):
        return ModelSpec(model, "conv", model.channels, model.receptive_radius,
                         1 if model.zero_preserving else 0, False)
    if not callable(model):
        raise TypeError("model: expected a ZeroModel, a ConvModel, a callable taking a float32 batch, "
                        f"or None, got {type(model).__name__}")
    radius = -1
    rr = getattr(model, "receptive_radius", None)
    if rr is not None:
        if isinstance(rr, bool) or not isinstance(rr, (int, np.integer)):
            raise TypeError(f"model.receptive_radius must be an int or None, got {type(rr).__name__}")
        if rr == -1:          # the convention of _model_loader.TorchScriptModel: unknown / global
            rr = None
        elif rr < 0 or rr > (1 << 20):
            raise ValueError(f"model.receptive_radius must be in [0, 2**20] (or None / -1: unknown), "
                             f"got {int(rr)}")
        else:
            radius = int(rr)
    zp = getattr(model, "zero_preserving", None)
    zpi = -1 if zp is None else (1 if bool(zp) else 0)
    hm = getattr(model, "has_memory", None)
    has_memory = bool(hm) if hm is not None else False
    if has_memory:
        for name in ("commit_memory", "discard_memory", "reset_memory"):
            if not callable(getattr(model, name, None)):
                raise ValueError(f"model has has_memory=True but no callable {name}() (the memory protocol "
                                 "needs commit_memory, discard_memory and reset_memory)")
    return ModelSpec(model, "callable", -1, radius, zpi, has_memory)


def _shape_str(shape: Sequence[int]) -> str:
    return str(tuple(int(v) for v in shape))


def model_output(out: Any, full: Tuple[int, ...], allow_center: bool) -> np.ndarray:
    """A callable's result as float32: ``full`` (B, C, H, W), or (B, C) when ``allow_center``.

    Like the C adapter: torch tensors are detached and moved to the CPU, any float dtype is
    cast to float32; anything else is a ValueError naming the expected and actual shape/dtype.
    """
    if not isinstance(out, np.ndarray) and not hasattr(out, "detach") and not isinstance(out, Sequence):
        raise ValueError(f"model returned {type(out).__name__}, expected a float32 array of shape "
                         f"(B, C, H, W) = {_shape_str(full)}")
    src = out
    if not isinstance(src, np.ndarray) and hasattr(src, "detach") and hasattr(src, "cpu"):
        src = src.detach().cpu()
    try:
        raw = np.asarray(src)
    except Exception:  # noqa: BLE001
        raise ValueError(f"model returned {type(out).__name__} that is not convertible to a float32 "
                         "array") from None
    if raw.dtype.kind != "f":
        raise ValueError(f"model returned dtype {raw.dtype}, expected a float dtype (float32) of shape "
                         f"{_shape_str(full)}")
    arr = np.ascontiguousarray(raw, dtype=np.float32)
    if arr.shape == tuple(full):
        return arr
    if allow_center and arr.shape == tuple(full[:2]):
        return arr
    if allow_center:
        raise ValueError(f"model returned shape {_shape_str(arr.shape)}, expected {_shape_str(full)} "
                         f"or {_shape_str(full[:2])}")
    raise ValueError(f"model returned shape {_shape_str(arr.shape)}, expected {_shape_str(full)}")

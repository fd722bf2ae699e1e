"""The model files' metadata: one type (:class:`ModelMetadata`), one reader (:func:`read_metadata`).

Both model formats of docs/torchscript.md are zip archives and carry an
``atheria_meta.json`` object:

* TorchScript (``.pt``, ``torch.jit.save``): the member ``<archive>/extra/atheria_meta.json``
  (``format`` = ``"atheria-torchscript"``).
* AOTInductor packages (``.pt2``, ``torch._inductor.aoti_compile_and_package``): the
  string ``atheria_meta`` of the package's AOTInductor metadata
  (``<archive>/data/aotinductor/model/*_metadata.json``, readable in C++ through
  ``AOTIModelPackageLoader::get_metadata``; ``format`` = ``"atheria-aoti"``).

The reader needs no torch, reads at most :data:`MAX_MEMBER_BYTES` of a member
(streamed, so a small member that inflates to gigabytes costs no memory), refuses
JSON nested deeper than :data:`MAX_JSON_DEPTH` or with integers of more than 18
digits, and checks every field's type and range.  Every refusal is a
:class:`ModelLoadError` whose message is ``"cannot load model <file>: <cause>"``
and whose ``kind`` is a name of the one error table (``include/atheria/load_error.h``,
:data:`ERROR_KINDS`).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple

__all__ = ["ModelLoadError", "ModelNotFoundError", "ModelMetadata", "NativeEquivalent", "read_metadata",
           "check_archive", "ERROR_KINDS", "ERROR_EXCEPTIONS", "META_NAME", "META_FORMAT",
           "AOTI_FORMAT", "META_VERSION", "MAX_MEMBER_BYTES", "MAX_JSON_DEPTH", "MAX_D_STATE"]

META_NAME = "atheria_meta.json"
META_FORMAT = "atheria-torchscript"
AOTI_FORMAT = "atheria-aoti"
#: highest metadata version this reader understands
META_VERSION = 1
#: most bytes read from one archive member (the metadata is a few hundred bytes)
MAX_MEMBER_BYTES = 1 << 20
#: deepest JSON nesting accepted in atheria_meta.json
MAX_JSON_DEPTH = 16
#: ATH_MAX_D_STATE of include/atheria/common.h
MAX_D_STATE = 4096
_MAX_INT_DIGITS = 18
_MAX_RADIUS = 1 << 24


def _error_table() -> Tuple[Tuple[str, str], ...]:
    """(kind, exception type name) rows of include/atheria/load_error.h, from the extension.

    The pure-Python backend (no extension) uses the copy below; tests/test_model_loader.py
    checks that the copy equals the extension's table.
    """
    try:
        from . import _core
        return tuple(tuple(r) for r in _core._load_error_kinds())  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return _ERROR_TABLE_COPY


_ERROR_TABLE_COPY: Tuple[Tuple[str, str], ...] = (
    ("ok", "RuntimeError"), ("not_found", "FileNotFoundError"), ("not_a_file", "OSError"),
    ("not_zip", "OSError"), ("not_torchscript", "OSError"), ("corrupt", "OSError"),
    ("bad_metadata", "OSError"), ("incompatible", "OSError"), ("no_torch", "RuntimeError"),
    ("cuda_unavailable", "RuntimeError"), ("bad_device", "ValueError"), ("bad_model", "RuntimeError"),
    ("mismatch", "ValueError"), ("out_of_memory", "MemoryError"), ("other", "RuntimeError"),
)
#: kind -> name of the exception type the extension raises for it
ERROR_EXCEPTIONS: Dict[str, str] = dict(_error_table())
#: every load error kind except "ok"
ERROR_KINDS: Tuple[str, ...] = tuple(k for k in ERROR_EXCEPTIONS if k != "ok")


class ModelLoadError(RuntimeError):
    """A model file could not be loaded; ``kind`` (see ERROR_KINDS) and ``path`` say why/where."""

    def __init__(self, message: str, *, kind: str = "other", path: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind if kind in ERROR_EXCEPTIONS else "other"
        self.path = path


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model file does not exist ("JIT model not found: <path>")."""

    def __init__(self, path: str) -> None:
        ModelLoadError.__init__(self, f"JIT model not found: {path}", kind="not_found", path=path)
        self.filename = path

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0])


def fail(kind: str, path: str, cause: str) -> ModelLoadError:
    """The ModelLoadError "cannot load model <path>: <cause>" of ``kind``."""
    return ModelLoadError(f"cannot load model {path}: {cause}", kind=kind, path=path)


@dataclass(frozen=True)
class NativeEquivalent:
    """``native_equivalent`` of a LOCAL_CONV file: the C conv stack that computes the same rule."""

    kind: str          # "conv_stack"
    activation: str    # relu / tanh / gelu / identity
    n_layers: int
    bias: bool


@dataclass(frozen=True)
class ModelMetadata:
    """The validated ``atheria_meta.json`` of a model file (docs/torchscript.md).

    Units: ``d_state`` complex channels (the model sees 2·d_state float channels);
    ``receptive_radius`` cells (None = unknown/global); shapes are (B, C, H, W).
    ``raw`` is the whole JSON object (unknown keys are kept, not interpreted);
    :meth:`get` / ``[key]`` read it.
    """

    path: str
    format: str                                  # META_FORMAT or AOTI_FORMAT
    version: int
    architecture: Optional[str] = None
    d_state: Optional[int] = None
    has_memory: bool = False
    unitary: bool = False
    receptive_radius: Optional[int] = None
    zero_preserving: Optional[bool] = None
    native_equivalent: Optional[NativeEquivalent] = None
    checkpoint_sha256: Optional[str] = None
    torch_version: Optional[str] = None
    #: .pt2 only: the input shape the package was compiled for, (1, 2·d_state, H, W)
    input_shape: Optional[Tuple[int, int, int, int]] = None
    #: .pt2 memory models: the shape of h and c (zeros initially)
    memory_shape: Optional[Tuple[int, int, int, int]] = None
    #: .pt2 only: the device type it was compiled for ("cpu" / "cuda")
    device: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_aoti(self) -> bool:
        return self.format == AOTI_FORMAT

    def get(self, key: str, default: Any = None) -> Any:
        """``raw.get(key, default)`` (the JSON object as written)."""
        return self.raw.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        """The raw JSON keys (so ``dict(meta)`` / ``set(meta)`` see the file's object)."""
        return iter(self.raw)

    def keys(self) -> Any:
        return self.raw.keys()

    def load_args(self) -> Dict[str, int]:
        """The shim's TorchScript load arguments (-1 = unknown)."""
        return {"has_memory": 1 if self.has_memory else 0,
                "receptive_radius": -1 if self.receptive_radius is None else self.receptive_radius,
                "zero_preserving": -1 if self.zero_preserving is None else int(self.zero_preserving),
                "channels": -1 if self.d_state is None else 2 * self.d_state}


# --------------------------------------------------------------------------- archive (no torch)
def check_archive(path: str) -> Tuple[zipfile.ZipFile, str]:
    """Opens ``path`` as a model zip; returns (ZipFile, archive prefix) — caller closes.

    Raises ModelLoadError: not_found, not_a_file, not_zip, corrupt, not_torchscript.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelNotFoundError(path)
    if not os.path.isfile(path):
        raise fail("not_a_file", path, "not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise fail("not_a_file", path, f"unreadable: {exc}") from exc
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            raise fail("corrupt", path, "truncated or corrupt zip archive (no central directory)")
        raise fail("not_zip", path, "not a model archive (not a zip file; TorchScript files are written "
                                    "by torch.jit.save, .pt2 packages by aoti_compile_and_package)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise fail("corrupt", path, f"corrupt zip archive: {exc}") from exc
    names = zf.namelist()
    if not names:
        zf.close()
        raise fail("not_torchscript", path, "empty zip archive")
    prefix = names[0].split("/", 1)[0]
    has_code = any(n.startswith(prefix + "/code/") for n in names)
    has_aoti = any(n.startswith(prefix + "/data/aotinductor/") for n in names)
    has_data = (prefix + "/data.pkl") in names
    if not has_code and not has_aoti:
        zf.close()
        what = ("a torch.save() file (a checkpoint/state dict?), not TorchScript; export it with "
                "atheria_core.export.export_model" if has_data else "a zip archive that is neither TorchScript "
                                                                    "nor an AOTInductor package")
        raise fail("not_torchscript", path, what)
    return zf, prefix


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, cap: int = MAX_MEMBER_BYTES) -> bytes:
    """At most ``cap`` bytes of one member, streamed; ModelLoadError when it is larger or damaged."""
    if info.file_size > cap:
        raise fail("bad_metadata", path, f"archive member {info.filename} is {info.file_size} bytes "
                                         f"(more than the {cap}-byte limit)")
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise fail("corrupt", path, f"corrupt archive member {info.filename}: {exc}") from exc
    if len(data) > cap:  # the header lied about the size
        raise fail("bad_metadata", path, f"archive member {info.filename} inflates to more than {cap} bytes")
    return data


def _json_depth_ok(text: str, limit: int) -> bool:
    """True if no array/object in ``text`` nests deeper than ``limit`` (strings skipped)."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(s.lstrip('-'))} digits (at most {_MAX_INT_DIGITS})")
    return int(s)


def parse_json_object(raw: bytes, path: str, what: str) -> Dict[str, Any]:
    """``raw`` (UTF-8 JSON) as a dict, with the depth and integer limits; ModelLoadError otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("bad_metadata", path, f"{what} is not UTF-8 ({exc})") from exc
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        raise fail("bad_metadata", path, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise fail("bad_metadata", path, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise fail("bad_metadata", path, f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _torchscript_meta_member(zf: zipfile.ZipFile) -> Optional[zipfile.ZipInfo]:
    for info in zf.infolist():
        n = info.filename
        if n.endswith("/extra/" + META_NAME) or n == "extra/" + META_NAME:
            return info
    return None


def _aoti_meta_members(zf: zipfile.ZipFile, prefix: str) -> Iterator[zipfile.ZipInfo]:
    base = prefix + "/data/aotinductor/model/"
    for info in zf.infolist():
        if info.filename.startswith(base) and info.filename.endswith("_metadata.json"):
            yield info


# --------------------------------------------------------------------------- fields
def _opt_int(obj: Dict[str, Any], key: str, path: str, lo: int, hi: int) -> Optional[int]:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise fail("bad_metadata", path, f"{META_NAME}: {key} must be null or an int in [{lo}, {hi}], got {v!r}")
    return v


def _opt_bool(obj: Dict[str, Any], key: str, path: str) -> Optional[bool]:
    v = obj.get(key)
    if v is None or isinstance(v, bool):
        return v
    raise fail("bad_metadata", path, f"{META_NAME}: {key} must be true, false or null, got {v!r}")


def _opt_str(obj: Dict[str, Any], key: str, path: str) -> Optional[str]:
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    raise fail("bad_metadata", path, f"{META_NAME}: {key} must be a string or null, got {type(v).__name__}")


def _opt_shape(obj: Dict[str, Any], key: str, path: str) -> Optional[Tuple[int, int, int, int]]:
    v = obj.get(key)
    if v is None:
        return None
    if (not isinstance(v, list) or len(v) != 4
            or any(isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= (1 << 20) for e in v)):
        raise fail("bad_metadata", path, f"{META_NAME}: {key} must be 4 ints in [1, 2**20], got {v!r}")
    return (v[0], v[1], v[2], v[3])


def _native_equivalent(obj: Dict[str, Any], path: str) -> Optional[NativeEquivalent]:
    v = obj.get("native_equivalent")
    if v is None:
        return None
    if not isinstance(v, dict):
        raise fail("bad_metadata", path, f"{META_NAME}: native_equivalent must be an object, got "
                                         f"{type(v).__name__}")
    kind, act, n, bias = v.get("kind"), v.get("activation", "relu"), v.get("n_layers"), v.get("bias", False)
    if kind != "conv_stack":
        raise fail("bad_metadata", path, f"{META_NAME}: native_equivalent.kind must be 'conv_stack', got {kind!r}")
    if act not in ("relu", "tanh", "gelu", "identity"):
        raise fail("bad_metadata", path, f"{META_NAME}: native_equivalent.activation {act!r} is not one of "
                                         "relu, tanh, gelu, identity")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise fail("bad_metadata", path, f"{META_NAME}: native_equivalent.n_layers must be an int in [1, 1024], "
                                         f"got {n!r}")
    if not isinstance(bias, bool):
        raise fail("bad_metadata", path, f"{META_NAME}: native_equivalent.bias must be a bool, got {bias!r}")
    return NativeEquivalent(kind, act, n, bias)


def _validate(obj: Dict[str, Any], path: str, expect_format: str) -> ModelMetadata:
    fmt = obj.get("format")
    if fmt != expect_format:
        raise fail("bad_metadata", path, f"{META_NAME} format is {fmt!r}, expected {expect_format!r}")
    ver = obj.get("version")
    if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
        raise fail("bad_metadata", path, f"{META_NAME} version must be an int >= 1, got {ver!r}")
    if ver > META_VERSION:
        raise fail("incompatible", path, f"metadata version {ver} is newer than supported ({META_VERSION}); "
                                         "upgrade atheria_core")
    has_memory = _opt_bool(obj, "has_memory", path)
    unitary = _opt_bool(obj, "unitary", path)
    meta = ModelMetadata(
        path=path, format=fmt, version=ver,
        architecture=_opt_str(obj, "architecture", path),
        d_state=_opt_int(obj, "d_state", path, 1, MAX_D_STATE),
        has_memory=bool(has_memory), unitary=bool(unitary),
        receptive_radius=_opt_int(obj, "receptive_radius", path, 0, _MAX_RADIUS),
        zero_preserving=_opt_bool(obj, "zero_preserving", path),
        native_equivalent=_native_equivalent(obj, path),
        checkpoint_sha256=_opt_str(obj, "checkpoint_sha256", path),
        torch_version=_opt_str(obj, "torch_version", path),
        input_shape=_opt_shape(obj, "input_shape", path),
        memory_shape=_opt_shape(obj, "memory_shape", path),
        device=_opt_str(obj, "device", path),
        raw=obj,
    )
    if meta.is_aoti:
        if meta.input_shape is None or meta.d_state is None:
            raise fail("bad_metadata", path, f"{META_NAME} of a .pt2 package needs d_state and input_shape")
        if meta.input_shape[0] != 1 or meta.input_shape[1] != 2 * meta.d_state:
            raise fail("bad_metadata", path, f"{META_NAME}: input_shape {list(meta.input_shape)} is not "
                                             f"(1, 2*d_state={2 * meta.d_state}, H, W)")
        if meta.has_memory != (meta.memory_shape is not None):
            raise fail("bad_metadata", path, f"{META_NAME}: a memory model needs memory_shape (and only it)")
    return meta


def read_metadata(path: "str | os.PathLike[str]") -> Optional[ModelMetadata]:
    """The :class:`ModelMetadata` of a TorchScript file or .pt2 package; None when a
    TorchScript file has none (a .pt2 package without it is refused: its input shape is needed).

    Needs no torch.  Raises ModelLoadError (kind not_found / not_a_file / not_zip / corrupt /
    not_torchscript / bad_metadata / incompatible) naming the file and the cause.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    zf, prefix = check_archive(path)
    with zf:
        if any(n.startswith(prefix + "/data/aotinductor/") for n in zf.namelist()):
            for info in _aoti_meta_members(zf, prefix):
                outer = parse_json_object(read_member(zf, info, path), path, info.filename)
                inner = outer.get("atheria_meta")
                if inner is None:
                    continue
                if not isinstance(inner, str):
                    raise fail("bad_metadata", path, f"{info.filename}: atheria_meta must be a JSON string")
                obj = parse_json_object(inner.encode("utf-8", "surrogatepass"), path, META_NAME)
                return _validate(obj, path, AOTI_FORMAT)
            raise fail("bad_metadata", path, "AOTInductor package without atheria_meta (export it with "
                                             "atheria_core.export.export_model)")
        info = _torchscript_meta_member(zf)
        if info is None:
            return None
        obj = parse_json_object(read_member(zf, info, path), path, META_NAME)
    return _validate(obj, path, META_FORMAT)

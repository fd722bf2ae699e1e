"""Snapshots: the complete state of an engine, in memory and on disk (docs/snapshots.md).

A :class:`Snapshot` is a ``meta`` dict (JSON-able: engine type, constructor options, step
count, model description, memory shapes) plus named NumPy arrays (matter or grid, model
memory, built-in model weights).  ``to_bytes`` / ``from_bytes`` are the file format
(version :data:`FORMAT_VERSION`, CRC-32 checked); :func:`write_snapshot_file` writes it
atomically (temporary file in the same directory, fsync, rename, fsync of the directory).

Any unreadable file raises :class:`SnapshotError` (a ``ValueError``) naming the file and
the cause: truncated, corrupt (checksum or structure), foreign (not a snapshot) or newer
(a format version this code does not read).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import zlib
from collections import deque
from typing import Any, Deque, Dict, Mapping, Optional

import numpy as np

from ._atomic import atomic_write_bytes

logger = logging.getLogger("atheria_core")

__all__ = ["Snapshot", "SnapshotError", "History", "FORMAT_VERSION", "MAGIC", "write_snapshot_file",
           "read_snapshot_file", "load_snapshot", "file_sha256"]

MAGIC = b"ATHSNAP\x00"
END_MAGIC = b"ATHSEND\x00"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIQ")          # magic, version, flags, body length
_TRAILER = struct.Struct("<I8s")           # crc32 of header + body, end magic
#: dtype codes of array sections
_DTYPES = {1: np.dtype("<i8"), 2: np.dtype("<f4"), 3: np.dtype("<c8"), 4: np.dtype("<f8"), 5: np.dtype("u1")}
_CODES = {v: k for k, v in _DTYPES.items()}
_SEC_JSON, _SEC_ARRAY = 0, 1
#: refuse absurd sizes before allocating (a corrupt length must not become a huge allocation)
_MAX_NDIM = 8


class SnapshotError(ValueError):
    """A snapshot file or object that cannot be used; the message names the file and the cause.

    ``kind`` is one of ``truncated``, ``corrupt``, ``foreign``, ``newer``, ``io``, ``mismatch``.
    """

    def __init__(self, message: str, *, kind: str = "corrupt", path: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Snapshot:
    """The state of one engine: ``meta`` (dict) and ``arrays`` (name -> ndarray, owned copies)."""

    __slots__ = ("meta", "arrays")

    def __init__(self, meta: Mapping[str, Any], arrays: Optional[Mapping[str, np.ndarray]] = None) -> None:
        self.meta: Dict[str, Any] = json.loads(json.dumps(dict(meta)))   # a JSON-able deep copy
        self.arrays: Dict[str, np.ndarray] = {k: np.array(v, copy=True) for k, v in (arrays or {}).items()}

    @property
    def engine(self) -> str:
        """The engine type: 'Engine', 'DenseEngine', 'AetheriaMotor' or 'NativeEngineWrapper'."""
        return str(self.meta.get("engine"))

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (plus the small meta)."""
        return int(sum(a.nbytes for a in self.arrays.values())) + len(json.dumps(self.meta))

    def __repr__(self) -> str:
        return f"Snapshot(engine={self.engine!r}, step={self.step}, arrays={sorted(self.arrays)}, nbytes={self.nbytes})"

    # ------------------------------------------------------------------ format
    def _sections(self) -> tuple:
        """(meta JSON bytes, [(name, little-endian C-contiguous array)] sorted by name)."""
        text = json.dumps(self.meta, sort_keys=True).encode("utf-8")
        out = []
        for name in sorted(self.arrays):
            a = np.asarray(self.arrays[name])
            code = _CODES.get(a.dtype.newbyteorder("<")) if a.dtype.kind != "u" else _CODES.get(a.dtype)
            if code is None:
                raise SnapshotError(f"snapshot array {name!r}: unsupported dtype {a.dtype}", kind="mismatch")
            out.append((name, np.ascontiguousarray(a, dtype=_DTYPES[code].newbyteorder("="))))
        return text, out

    def to_bytes(self) -> bytes:
        """The file format (docs/snapshots.md): header, sections, CRC-32 trailer.

        Encoded by the C core (src/core/snapshot.c) with the C backend, else in Python
        (the same bytes)."""
        core = _c_codec()
        if core is not None:
            text, arrays = self._sections()
            return core._snapshot_encode(text, arrays)
        return self._py_to_bytes()

    def _py_to_bytes(self) -> bytes:
        body = io.BytesIO()

        def section(name: str, kind: int) -> None:
            raw = name.encode("utf-8")
            body.write(struct.pack("<I", len(raw)))
            body.write(raw)
            body.write(struct.pack("<B", kind))

        text = json.dumps(self.meta, sort_keys=True).encode("utf-8")
        section("meta", _SEC_JSON)
        body.write(struct.pack("<Q", len(text)))
        body.write(text)
        for name in sorted(self.arrays):
            a = self.arrays[name]
            dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
            code = _CODES.get(np.dtype(dt).newbyteorder("<") if dt.kind != "u" else dt)
            if code is None:
                raise SnapshotError(f"snapshot array {name!r}: unsupported dtype {a.dtype}", kind="mismatch")
            a = np.ascontiguousarray(a, dtype=_DTYPES[code])
            section(name, _SEC_ARRAY)
            body.write(struct.pack("<BB", code, a.ndim))
            body.write(struct.pack(f"<{a.ndim}Q", *a.shape))
            body.write(struct.pack("<Q", a.nbytes))
            body.write(a.tobytes())
        payload = body.getvalue()
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload)) + payload
        return head + _TRAILER.pack(zlib.crc32(head) & 0xFFFFFFFF, END_MAGIC)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "Snapshot":
        """Parses the file format; SnapshotError naming ``source`` and the cause.

        Parsed by the C core with the C backend, else in Python (the same checks)."""
        core = _c_codec()
        if core is None:
            return cls._py_from_bytes(data, source)
        ok, a, b = core._snapshot_decode(bytes(data), str(source))
        if not ok:
            raise SnapshotError(b, kind=a, path=source)
        try:
            meta = json.loads(a.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SnapshotError(f"snapshot {source}: meta section is not valid JSON ({exc})", kind="corrupt",
                                path=source) from None
        return cls._checked(meta, dict(b), source)

    @classmethod
    def _checked(cls, meta: Any, arrays: Dict[str, np.ndarray], source: str) -> "Snapshot":
        if not isinstance(meta, dict):
            raise SnapshotError(f"snapshot {source}: meta section is not a JSON object", kind="corrupt", path=source)
        if "engine" not in meta or "step" not in meta:
            raise SnapshotError(f"snapshot {source}: meta lacks 'engine' or 'step'", kind="corrupt", path=source)
        if isinstance(meta["step"], bool) or not isinstance(meta["step"], int):
            raise SnapshotError(f"snapshot {source}: step is not an integer", kind="corrupt", path=source)
        # The sections every loader reads as objects: checked once here, so a well-formed file
        # with nonsense in them is a SnapshotError, never an AttributeError deeper down.
        for key in _OBJECT_FIELDS:
            if meta.get(key) is not None and not isinstance(meta[key], dict):
                raise SnapshotError(f"snapshot {source}: '{key}' is not a JSON object", kind="corrupt",
                                    path=source)
        if meta.get("inner") is not None:   # the wrapper's snapshot holds its engine's
            cls._checked(meta["inner"], arrays, source)
        snap = cls.__new__(cls)
        snap.meta, snap.arrays = meta, arrays
        return snap

    @classmethod
    def _py_from_bytes(cls, data: bytes, source: str = "<bytes>") -> "Snapshot":
        def fail(kind: str, cause: str) -> SnapshotError:
            return SnapshotError(f"snapshot {source}: {cause}", kind=kind, path=source)

        data = bytes(data)
        if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
            if len(data) < len(MAGIC) and MAGIC.startswith(data) and data:
                raise fail("truncated", f"truncated ({len(data)} bytes, shorter than the header)")
            raise fail("foreign", "not an atheria_core snapshot (bad magic bytes)")
        if len(data) < _HEADER.size:
            raise fail("truncated", f"truncated ({len(data)} bytes, shorter than the header)")
        _, version, flags, length = _HEADER.unpack_from(data, 0)
        if version > FORMAT_VERSION:
            raise fail("newer", f"format version {version} is newer than this atheria_core reads "
                                f"({FORMAT_VERSION}); upgrade atheria_core")
        if version < 1:
            raise fail("corrupt", f"invalid format version {version}")
        total = _HEADER.size + length + _TRAILER.size
        if len(data) < total:
            raise fail("truncated", f"truncated: {len(data)} bytes, the header announces {total}")
        if len(data) > total:
            raise fail("corrupt", f"{len(data) - total} unexpected bytes after the end of the snapshot")
        crc, end = _TRAILER.unpack_from(data, _HEADER.size + length)
        if end != END_MAGIC:
            raise fail("corrupt", "bad end marker")
        if zlib.crc32(data[:_HEADER.size + length]) & 0xFFFFFFFF != crc:
            raise fail("corrupt", "checksum mismatch (CRC-32): the file is damaged")
        if flags != 0:
            raise fail("newer", f"unknown flags {flags:#x} (written by a newer atheria_core?)")
        pos, stop = _HEADER.size, _HEADER.size + length
        meta: Optional[Dict[str, Any]] = None
        arrays: Dict[str, np.ndarray] = {}

        def take(n: int) -> bytes:
            nonlocal pos
            if n < 0 or pos + n > stop:
                raise fail("corrupt", "a section runs past the end of the body")
            out = data[pos:pos + n]
            pos += n
            return out

        while pos < stop:
            (nlen,) = struct.unpack("<I", take(4))
            if nlen > 256:
                raise fail("corrupt", f"section name of {nlen} bytes")
            try:
                name = take(nlen).decode("utf-8")
            except UnicodeDecodeError:
                raise fail("corrupt", "section name is not UTF-8") from None
            (kind,) = struct.unpack("<B", take(1))
            if kind == _SEC_JSON:
                (n,) = struct.unpack("<Q", take(8))
                raw = take(n)
                if name != "meta":
                    raise fail("corrupt", f"unexpected JSON section {name!r}")
                try:
                    meta = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise fail("corrupt", f"meta section is not valid JSON ({exc})") from None
                if not isinstance(meta, dict):
                    raise fail("corrupt", "meta section is not a JSON object")
            elif kind == _SEC_ARRAY:
                code, ndim = struct.unpack("<BB", take(2))
                if code not in _DTYPES or ndim > _MAX_NDIM:
                    raise fail("corrupt", f"array {name!r}: bad dtype code {code} or ndim {ndim}")
                shape = struct.unpack(f"<{ndim}Q", take(8 * ndim))
                (nbytes,) = struct.unpack("<Q", take(8))
                dt = _DTYPES[code]
                count = 1
                for s in shape:
                    count *= int(s)
                if count * dt.itemsize != nbytes:
                    raise fail("corrupt", f"array {name!r}: shape {shape} does not match {nbytes} bytes")
                arrays[name] = np.frombuffer(take(nbytes), dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
            else:
                raise fail("corrupt", f"section {name!r} has unknown type {kind}")
        if meta is None:
            raise fail("corrupt", "no meta section")
        return cls._checked(meta, arrays, source)


#: meta fields that are JSON objects (or null) wherever they appear.
_OBJECT_FIELDS = ("options", "model", "memory", "inner")


def _c_codec():
    """The C extension when it is the backend in use (it encodes, parses and writes files)."""
    import atheria_core
    impl = getattr(atheria_core, "_impl", None)
    return impl if getattr(atheria_core, "BACKEND", "") == "c" and hasattr(impl, "_snapshot_encode") else None


def write_snapshot_file(path: Any, snap: Snapshot) -> str:
    """Writes ``snap`` to ``path`` atomically (temp file + fsync + rename); returns the path."""
    path = os.fspath(path)
    data = snap.to_bytes()
    core = _c_codec()
    if core is not None:
        try:
            core._snapshot_write_file(path, data)
        except OSError as exc:
            raise SnapshotError(str(exc), kind="io", path=path) from exc
        return path
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise SnapshotError(str(exc), kind="io", path=path) from exc
    return path


def read_snapshot_file(path: Any) -> Snapshot:
    """Reads a snapshot file; SnapshotError (kind 'io' for a missing/unreadable file)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SnapshotError(f"snapshot {path}: cannot read ({exc.strerror or exc})", kind="io", path=path) from exc
    return Snapshot.from_bytes(data, source=path)


def load_snapshot(path: Any, *, model: Any = None, device: Optional[str] = None) -> Any:
    """A ready engine of the snapshot's type, in the saved state.

    Engine / DenseEngine / AetheriaMotor / NativeEngineWrapper, with its options, step count,
    field, model memory and model: built-in models from the file, file models reloaded when
    the file still has the recorded sha256.  A Python callable is not saved: pass it as
    ``model=`` (or set it afterwards; a warning says so).  ``device`` overrides the saved one.
    """
    snap = read_snapshot_file(path)
    from . import _engines
    return _engines.engine_from_snapshot(snap, source=os.fspath(path), model=model, device=device)


class History:
    """A memory-bounded ring of recent snapshots of one engine.

    ``push()`` snapshots the engine (dropping the oldest entries beyond ``max_bytes``; the
    newest one is always kept).  ``rewind(n=1)`` restores the state of the ``n``-th most
    recent push (``n = 1``: the newest), drops the pushes after it (it stays, so ``rewind()``
    again returns to the same state) and returns the restored step count.
    """

    def __init__(self, engine: Any, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        for name in ("snapshot", "restore"):
            if not callable(getattr(engine, name, None)):
                raise TypeError(f"engine: {type(engine).__name__} has no {name}()")
        self.engine = engine
        self.max_bytes = int(max_bytes)
        self._ring: Deque[Snapshot] = deque()
        self._nbytes = 0

    def push(self) -> int:
        """Snapshots the current state; returns its step count."""
        snap = self.engine.snapshot()
        self._ring.append(snap)
        self._nbytes += snap.nbytes
        while len(self._ring) > 1 and self._nbytes > self.max_bytes:
            self._nbytes -= self._ring.popleft().nbytes
        return snap.step

    def rewind(self, n: int = 1) -> int:
        """Restores the ``n``-th most recent push (n >= 1) and returns its step count;
        IndexError when fewer than n are kept (nothing changes then)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if n > len(self._ring):
            raise IndexError(f"rewind({n}): the history holds {len(self._ring)} snapshot(s)")
        snap = self._ring[-n]
        self.engine.restore(snap)
        for _ in range(n - 1):
            self._nbytes -= self._ring.pop().nbytes
        return snap.step

    def clear(self) -> None:
        self._ring.clear()
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept snapshots."""
        return self._nbytes

    @property
    def steps(self) -> list:
        """Step counts of the kept snapshots, oldest first."""
        return [s.step for s in self._ring]

    def __len__(self) -> int:
        return len(self._ring)

    def __repr__(self) -> str:
        return f"History(len={len(self)}, nbytes={self._nbytes}, max_bytes={self.max_bytes})"

"""Atomic file writes: the one implementation used by experiments, exports and snapshots.

A file is written to a temporary file in the same directory, flushed and fsync'ed,
renamed over the target with ``os.replace`` and the directory is fsync'ed, so a
reader sees either the old file or the whole new one, also after a crash.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: PathLike, data: Union[bytes, Callable[[io.BufferedWriter], None]]) -> None:
    """Writes ``data`` (bytes, or a function writing to a binary file object) to ``path``
    atomically (temporary file, fsync, ``os.replace``, directory fsync).  Creates the
    directory if needed; on any failure the old file is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself is durable once the directory is synced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass

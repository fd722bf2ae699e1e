"""Fuzz target: the snapshot reader (docs/snapshots.md), through the public entry point
``atheria_core.load_snapshot(path)`` -> a ready engine, or SnapshotError naming the file
(a restore that the content makes impossible may also raise ValueError / TypeError /
OverflowError with a message, never anything else).

Each execution writes the input to a temporary file.  Both codecs are exercised: the one in
use (C with the C backend) and the Python one, and they must refuse the same inputs alike."""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import atheris
    with atheris.instrument_imports():
        import atheria_core
        from atheria_core.snapshot import Snapshot, SnapshotError
except ImportError:
    import atheria_core
    from atheria_core.snapshot import Snapshot, SnapshotError

ALLOWED = (SnapshotError, ValueError, TypeError, OverflowError)
_DIR = tempfile.mkdtemp(prefix="atheria_fuzz_snapshot_")
_PATH = os.path.join(_DIR, "state.snap")


def _kind(fn, data):
    try:
        fn(data, _PATH)
    except SnapshotError as exc:
        return exc.kind
    return None


def check(data: bytes) -> None:
    assert _kind(Snapshot.from_bytes, data) == _kind(Snapshot._py_from_bytes, data), "the two codecs disagree"
    with open(_PATH, "wb") as fh:
        fh.write(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            atheria_core.load_snapshot(_PATH)
        except SnapshotError as exc:
            assert _PATH in str(exc), f"error does not name the file: {exc}"
        except ALLOWED:
            pass


if __name__ == "__main__":
    from _harness import main
    main(check)

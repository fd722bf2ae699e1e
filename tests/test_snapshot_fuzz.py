"""Fuzzing of the snapshot reader (Hypothesis): any bytes give a Snapshot or a SnapshotError,
never another exception or a crash; the C backend's engines refuse what they cannot restore."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given, settings, strategies as st  # noqa: E402

import atheria_core  # noqa: E402
from atheria_core import Snapshot, SnapshotError  # noqa: E402


def _valid() -> bytes:
    e = atheria_core.Engine(2, background="zero", threshold=0.0)
    e.set_model(atheria_core.ZeroModel())
    e.add_particles(np.array([[0, 0, 0], [1, 2, 0]]), np.ones((2, 2), np.complex64))
    e.step(1)
    return e.snapshot().to_bytes()


VALID = _valid()


def _read(data: bytes) -> None:
    # the Python codec (the fallback's) and the one in use (C with the C backend) agree
    try:
        Snapshot._py_from_bytes(data, source="fuzz.snap")
        py_kind = None
    except SnapshotError as exc:
        py_kind = exc.kind
    try:
        Snapshot.from_bytes(data, source="fuzz.snap")
        kind = None
    except SnapshotError as exc:
        kind = exc.kind
    assert kind == py_kind
    try:
        snap = Snapshot.from_bytes(data, source="fuzz.snap")
    except SnapshotError as exc:
        assert "fuzz.snap" in str(exc) and exc.kind in ("truncated", "corrupt", "foreign", "newer")
        return
    # it parsed: rebuilding the engine either works or raises SnapshotError / a clear ValueError
    from atheria_core._engines import engine_from_snapshot
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            engine_from_snapshot(snap, source="fuzz.snap")
        except (SnapshotError, ValueError, TypeError, OverflowError):
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _read(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_valid_file(edits):
    raw = bytearray(VALID)
    for pos, val in edits:
        raw[pos] = val
    _read(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID)))
def test_every_truncation(n):
    if n == len(VALID):
        assert Snapshot.from_bytes(VALID[:n]).step == 1
        return
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(VALID[:n], source="fuzz.snap")


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["engine", "step", "options", "model", "memory", "inner"]),
                       st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=8),
                                 st.sampled_from(["Engine", "DenseEngine", "AetheriaMotor", "NativeEngineWrapper"]),
                                 st.dictionaries(st.text(max_size=6), st.integers(-2, 70), max_size=4))),
       st.dictionaries(st.sampled_from(["coords", "states", "field", "memory_h", "model_w0"]),
                       st.sampled_from([np.zeros((2, 3), np.int64), np.ones((2, 2), np.complex64),
                                        np.zeros((0,), np.float32)]), max_size=3))
@example(meta={"model": 0, "engine": "AetheriaMotor", "step": 0}, arrays={})   # found by CI's Hypothesis run
@example(meta={"inner": 1, "engine": "NativeEngineWrapper", "step": 0}, arrays={})
def test_well_formed_files_with_nonsense_content(meta, arrays):
    # a CRC-valid file whose meta / arrays make no sense must still be refused cleanly
    _read(Snapshot(meta, arrays).to_bytes())

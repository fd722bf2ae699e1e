"""Golden regression suite: every engine, mode and demo architecture against the committed
trajectories in tests/golden/ (regenerated only by scripts/make_golden.py, which records the
versions in MANIFEST.json).  Tolerance: golden_cases.TOLERANCE (max |Δψ| over the recorded
frames); each test reports its maximum deviation (``max_deviation`` in the junit properties
and on stdout)."""
from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest

import golden_cases as gc

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
MANIFEST = json.load(open(os.path.join(GOLDEN, "MANIFEST.json")))
ENGINE_CASES = [n for n in MANIFEST["cases"] if not n.startswith("native_")]
NATIVE_CASES = [n for n in MANIFEST["cases"] if n.startswith("native_")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, one_torch_thread):
    return str(tmp_path_factory.mktemp("golden_models"))


def _compare(name, traj, record_property):
    ref = np.load(os.path.join(GOLDEN, f"{name}.npz"))["psi"]
    assert traj.shape == ref.shape, f"{name}: shape {traj.shape} vs golden {ref.shape}"
    dev = float(np.max(np.abs(traj.astype(np.complex128) - ref)))
    record_property("max_deviation", dev)
    print(f"golden {name}: max |Δψ| = {dev:.3e} (tolerance {gc.TOLERANCE:g})")
    assert dev <= gc.TOLERANCE, f"{name}: max |Δψ| = {dev:.3e} > {gc.TOLERANCE:g} against tests/golden/{name}.npz"


def _check_digests(workdir):
    for arch, params, _ in gc.DEMO_ARCHS:
        digest = gc.export_demo(arch, params, workdir)[1]
        if digest != MANIFEST["model_digests"][arch]:
            pytest.fail(f"the {arch} golden model initialises differently under torch here than under torch "
                        f"{MANIFEST['torch']} (which made the golden files): not a regression of the engine; "
                        "regenerate with scripts/make_golden.py if the torch upgrade is intended")


def test_manifest_records_versions():
    for key in ("atheria_core", "numpy", "torch", "python", "generated", "tolerance", "steps"):
        assert key in MANIFEST
    total = sum(os.path.getsize(os.path.join(GOLDEN, f)) for f in os.listdir(GOLDEN))
    assert total < 400 * 1024, f"golden files take {total} bytes"


@pytest.mark.parametrize("name", ENGINE_CASES)
def test_engine_golden(ac, name, workdir, record_property):
    from atheria_core._engines import engine_types
    eng, dense = engine_types(ac)
    ns = types.SimpleNamespace(Engine=eng, DenseEngine=dense, ConvModel=ac.ConvModel)
    _compare(name, gc.trajectory(gc.cases(ns, workdir)[name]), record_property)


@pytest.mark.parametrize("name", NATIVE_CASES)
def test_native_demo_golden(name, workdir, record_property):
    import atheria_core
    _check_digests(workdir)
    _compare(name, gc.trajectory(gc.cases(atheria_core, workdir)[name]), record_property)


@pytest.mark.parametrize("name", sorted(gc.motor_cases("")))
def test_reference_motor_golden(name, workdir, record_property):
    """AetheriaMotor on the same demo models matches the native golden trajectory (DESIGN §3.4)."""
    _check_digests(workdir)
    _compare(name, gc.trajectory(gc.motor_cases(workdir)[name]), record_property)

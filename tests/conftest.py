"""Shared fixtures: every API conformance test runs on both backends."""
from __future__ import annotations

import importlib
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))


try:  # Hypothesis: the suite runs a fixed, reproducible exploration ("ci", the default) so a
    # submission's CI cannot fail by the luck of the draw; HYPOTHESIS_PROFILE=explore draws fresh
    # examples (and the long fuzz campaigns are fuzz/, docs/build.md).
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, deadline=None, database=None)
    _hyp_settings.register_profile("explore", deadline=None)
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is in the dev extra; its tests import it themselves
    pass


def _load(name: str):
    if name == "c":
        # The compiled backend must be built for the suite: a missing build is
        # a failure, not a skip (CI builds it before running the tests).
        return importlib.import_module("atheria_core._core")
    return importlib.import_module("atheria_core._fallback")


@pytest.fixture(params=["c", "python"])
def ac(request):
    """The backend module (``atheria_core._core`` or ``atheria_core._fallback``)."""
    return _load(request.param)


@pytest.fixture
def c_backend():
    return _load("c")


@pytest.fixture
def py_backend():
    return _load("python")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Quickly trained demo experiments (real short training, ~5 s) in a temporary root."""
    import subprocess

    root = tmp_path_factory.mktemp("demo_experiments")
    script = os.path.join(ROOT, "scripts", "make_demo_experiments.py")
    run = subprocess.run([sys.executable, script, "--quick", "--root", str(root)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return str(root)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Runs a test module with one torch intra-op thread (tiny models are fastest so, and
    the CI machine is shared), restoring the previous count afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

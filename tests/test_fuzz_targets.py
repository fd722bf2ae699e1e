"""CI runs of the fuzz targets in fuzz/ (the long runs use Atheris: docs/build.md).

Each target's ``check(data)`` raises only for a defect; here Hypothesis feeds it a small,
deterministic budget of raw bytes and of JSON documents, and the committed seed corpus
(deep nesting, huge integers, trailing newlines...) is replayed."""
from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "fuzz")
sys.path.insert(0, FUZZ)

#: target module -> seed corpus folder (None: no replay here)
TARGETS = {
    "fuzz_experiment_config": "config",
    "fuzz_checkpoint_sidecar": "sidecar",
    # the metadata reader belongs to the model loader; its seeds (deep nesting, 5000-digit
    # ints) are replayed by the long Atheris run, see docs/build.md
    "fuzz_torchscript_meta": None,
    "fuzz_snapshot": "snapshot",
}
CI = settings(max_examples=150, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20)
config_keys = st.sampled_from(["EXPERIMENT_NAME", "MODEL_ARCHITECTURE", "MODEL_PARAMS", "GRID_SIZE_TRAINING",
                               "GRID_SIZE_INFERENCE", "GAMMA_DECAY", "INITIAL_STATE_MODE_INFERENCE",
                               "USE_NATIVE_ENGINE", "CONFIG_VERSION", "format", "version", "d_state"])
json_docs = st.dictionaries(config_keys | st.text(max_size=8), json_values, max_size=10).map(
    lambda d: json.dumps(d).encode("utf-8"))


def _target(name):
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(TARGETS))
@CI
@given(data=st.binary(max_size=512) | json_docs)
def test_fuzz_target_brief(name, data):
    _target(name).check(data)


@pytest.mark.parametrize("name", sorted(n for n, c in TARGETS.items() if c))
def test_fuzz_seed_corpus(name):
    folder = os.path.join(FUZZ, "corpus", TARGETS[name])
    seeds = sorted(os.listdir(folder))
    assert seeds, folder
    for fn in seeds:
        with open(os.path.join(folder, fn), "rb") as fh:
            _target(name).check(fh.read())


def test_fuzz_targets_flag_a_bad_parser(monkeypatch):
    """The harness can fail: a parser that leaks a bare ValueError is reported."""
    mod = _target("fuzz_experiment_config")

    def leaky(raw, **kw):
        raise ValueError("bare")
    monkeypatch.setattr(mod.experiments, "parse_config_bytes", leaky)
    with pytest.raises(ValueError):
        mod.check(b"{}")

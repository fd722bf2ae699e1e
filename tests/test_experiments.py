"""atheria_core.experiments: layout, validation, checkpoints, every error path; the demo script."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

torch = pytest.importorskip("torch")

from atheria_core import experiments as E  # noqa: E402
from atheria_core.models import build_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = {"d_state": 2, "hidden_channels": 4, "depth": 1}


def _cfg(**kw):
    cfg = {"EXPERIMENT_NAME": "EXP", "MODEL_ARCHITECTURE": "UNET", "MODEL_PARAMS": dict(PARAMS),
           "GRID_SIZE_TRAINING": 16}
    cfg.update(kw)
    return cfg


def _write_raw(root, name, text):
    d = os.path.join(root, "experiments", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as fh:
        fh.write(text)


def test_config_round_trip(tmp_path):
    path = E.save_experiment_config(_cfg(GAMMA_DECAY=0.01, LR=3e-4, NOTES={"a": 1}), tmp_path)
    assert path == os.path.join(str(tmp_path), "experiments", "EXP", "config.json")
    raw = json.load(open(path))
    assert raw["CONFIG_VERSION"] == E.CONFIG_VERSION and raw["USE_NATIVE_ENGINE"] is True
    exp = E.load_experiment_config("EXP", tmp_path)
    assert isinstance(exp, E.Experiment)
    assert (exp.name, exp.architecture, exp.d_state) == ("EXP", "UNET", 2)
    assert exp.grid_size_training == exp.grid_size_inference == 16      # default
    assert exp.gamma_decay == 0.01 and exp.initial_state_mode == "complex_noise"
    assert exp.extra == {"LR": 3e-4, "NOTES": {"a": 1}}
    assert exp["MODEL_PARAMS"] == PARAMS and exp.get("LR") == 3e-4
    assert E.load_experiment("EXP", tmp_path) == exp
    exp.gamma_decay = 0.5
    exp.save()
    assert E.load_experiment_config("EXP", tmp_path).gamma_decay == 0.5
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]


def test_legacy_config_without_version(tmp_path):
    _write_raw(tmp_path, "OLD", json.dumps(_cfg(EXPERIMENT_NAME="OLD", MODEL_ARCHITECTURE="unet")))
    exp = E.load_experiment_config("OLD", tmp_path)
    assert exp.config_version == 1 and exp.architecture == "UNET"


def test_missing_experiment(tmp_path):
    with pytest.raises(E.ExperimentNotFoundError, match="experiment 'NOPE' not found") as ei:
        E.load_experiment_config("NOPE", tmp_path)
    assert isinstance(ei.value, FileNotFoundError)
    os.makedirs(os.path.join(tmp_path, "experiments", "EMPTY"))
    with pytest.raises(E.ExperimentNotFoundError, match="has no config.json"):
        E.load_experiment_config("EMPTY", tmp_path)
    for bad in ["../x", "", "a/b", ".hidden", None]:
        with pytest.raises(ValueError, match="invalid experiment name"):
            E.load_experiment_config(bad, tmp_path)


@pytest.mark.parametrize("text,match", [
    ('{"EXPERIMENT_NAME": "X", "MODEL_ARCH', "not valid JSON"),             # truncated
    ("", "not valid JSON"),
    ("[1, 2]", "top level must be a JSON object"),
    (json.dumps({"EXPERIMENT_NAME": "X"}), r"missing required key\(s\)"),
    (json.dumps(_cfg(GRID_SIZE_TRAINING="32")), "GRID_SIZE_TRAINING must be an int"),
    (json.dumps(_cfg(GRID_SIZE_TRAINING=True)), "GRID_SIZE_TRAINING must be an int"),
    (json.dumps(_cfg(GRID_SIZE_INFERENCE=0)), "GRID_SIZE_INFERENCE must be an int >= 1"),
    (json.dumps(_cfg(MODEL_PARAMS=[4])), "MODEL_PARAMS must be an object"),
    (json.dumps(_cfg(MODEL_PARAMS={"hidden_channels": 4})), "MODEL_PARAMS.d_state"),
    (json.dumps(_cfg(MODEL_PARAMS={"d_state": 2, "hidden_channels": -1})), "hidden_channels"),
    (json.dumps(_cfg(GAMMA_DECAY=-0.1)), "GAMMA_DECAY"),
    (json.dumps(_cfg(USE_NATIVE_ENGINE="yes")), "USE_NATIVE_ENGINE must be true or false"),
    (json.dumps(_cfg(INITIAL_STATE_MODE_INFERENCE="gauss")), "INITIAL_STATE_MODE_INFERENCE"),
    (json.dumps(_cfg(MODEL_ARCHITECTURE="TRANSFORMER")), "unknown model architecture 'TRANSFORMER'"),
    (json.dumps(_cfg(CONFIG_VERSION=99)), "newer than this atheria_core supports"),
    (json.dumps(_cfg(CONFIG_VERSION="1")), "CONFIG_VERSION must be an int"),
])
def test_bad_configs(tmp_path, text, match):
    _write_raw(tmp_path, "X", text)
    with pytest.raises(E.ConfigError, match=match):
        E.load_experiment_config("X", tmp_path)


def test_unreadable_config(tmp_path):
    d = os.path.join(tmp_path, "experiments", "BIN")
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "wb") as fh:
        fh.write(b"\xff\xfe\x00garbage")
    with pytest.raises(E.ConfigError, match="cannot read"):
        E.load_experiment_config("BIN", tmp_path)


def test_save_rejects_invalid_config(tmp_path):
    with pytest.raises(E.ConfigError):
        E.save_experiment_config(_cfg(GRID_SIZE_TRAINING=0), tmp_path)
    assert not os.path.exists(os.path.join(tmp_path, "experiments", "EXP", "config.json"))


def test_checkpoints_latest_and_load(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    assert E.find_latest_checkpoint("EXP", tmp_path) is None
    models = {}
    for ep in (1, 5, 12):
        torch.manual_seed(ep)
        models[ep] = build_model("UNET", PARAMS)
        p = E.save_checkpoint("EXP", models[ep], ep, tmp_path, extra={"loss": 1.0 / ep})
        assert os.path.exists(p + ".sha256")
    assert [e for e, _ in E.list_checkpoints("EXP", tmp_path)] == [1, 5, 12]      # numeric order
    latest = E.find_latest_checkpoint("EXP", tmp_path)
    assert latest.endswith("checkpoint_ep12.pth")
    ck = E.load_checkpoint(latest)
    assert ck["epoch"] == 12 and ck["architecture"] == "UNET" and ck["model_params"]["d_state"] == 2
    assert ck["loss"] == pytest.approx(1 / 12)
    m = E.load_model_from_checkpoint("EXP", root=tmp_path)
    assert not m.training and m.checkpoint_epoch == 12
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(m(x), models[12].eval()(x))
        m5 = E.load_experiment_config("EXP", tmp_path).load_model(E.checkpoint_path("EXP", 5, tmp_path))
        assert torch.equal(m5(x), models[5].eval()(x))


def test_no_checkpoint(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    with pytest.raises(E.CheckpointNotFoundError, match="has no checkpoint_ep"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)
    with pytest.raises(E.CheckpointNotFoundError, match="checkpoint not found"):
        E.load_checkpoint(os.path.join(tmp_path, "nope.pth"))


def _saved(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    return E.save_checkpoint("EXP", build_model("UNET", PARAMS), 1, tmp_path)


def test_truncated_checkpoint_detected_by_checksum(tmp_path):
    p = _saved(tmp_path)
    data = open(p, "rb").read()
    with open(p, "wb") as fh:
        fh.write(data[: len(data) // 2])
    with pytest.raises(E.ChecksumMismatchError, match="corrupt or was modified"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)


def test_truncated_checkpoint_without_sidecar(tmp_path):
    p = _saved(tmp_path)
    os.remove(p + ".sha256")
    data = open(p, "rb").read()
    with open(p, "wb") as fh:
        fh.write(data[: len(data) // 3])
    with pytest.raises(E.CheckpointError, match="truncated or corrupt"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)


def test_garbage_checkpoint(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    p = E.checkpoint_path("EXP", 3, tmp_path)
    os.makedirs(os.path.dirname(p))
    with open(p, "wb") as fh:
        fh.write(b"this is not a checkpoint")
    with pytest.raises(E.CheckpointError, match="cannot load checkpoint"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)


def test_bad_sidecar(tmp_path):
    p = _saved(tmp_path)
    with open(p + ".sha256", "w") as fh:
        fh.write("xyz\n")
    with pytest.raises(E.CheckpointError, match="malformed checksum"):
        E.load_checkpoint(p)


def test_checkpoint_without_state_dict(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    p = E.checkpoint_path("EXP", 1, tmp_path)
    os.makedirs(os.path.dirname(p))
    torch.save({"epoch": 1, "weights": {}}, p)
    with pytest.raises(E.CheckpointError, match="has no 'model_state_dict'"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)
    torch.save([1, 2, 3], p)
    with pytest.raises(E.CheckpointError, match="expected a dict"):
        E.load_checkpoint(p)


def test_mismatched_weights(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    E.save_checkpoint("EXP", build_model("UNET", dict(PARAMS, hidden_channels=6)), 1, tmp_path)
    with pytest.raises(E.CheckpointError, match="do not match UNET"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)
    E.save_checkpoint("EXP", build_model("LOCAL_CONV", {"d_state": 2}), 2, tmp_path)
    with pytest.raises(E.CheckpointError, match="do not match"):
        E.load_model_from_checkpoint("EXP", root=tmp_path)


def test_compiled_prefix_stripped(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    m = build_model("UNET", PARAMS)
    sd = {"_orig_mod." + k: v for k, v in m.state_dict().items()}
    E.save_checkpoint("EXP", sd, 1, tmp_path)
    m2 = E.load_model_from_checkpoint("EXP", root=tmp_path)
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert torch.equal(m2(x), m.eval()(x))


def test_non_weights_checkpoint_needs_opt_in(tmp_path):
    E.save_experiment_config(_cfg(), tmp_path)
    p = E.checkpoint_path("EXP", 1, tmp_path)
    os.makedirs(os.path.dirname(p))
    torch.save({"model_state_dict": build_model("UNET", PARAMS).state_dict(), "cfg": E.Experiment}, p)
    with pytest.raises(E.CheckpointError, match="weights_only=False"):
        E.load_checkpoint(p)
    assert "cfg" in E.load_checkpoint(p, weights_only=False)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = os.path.join(tmp_path, "f.bin")
    E.atomic_write_bytes(p, b"old")

    def writer(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        E.atomic_write_bytes(p, writer)
    assert open(p, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_demo_script_quick(tmp_path, capsys, monkeypatch):
    """Real (short) training: writes configs + checkpoints; LOCAL_CONV's loss must drop."""
    spec = importlib.util.spec_from_file_location("make_demo_experiments",
                                                  os.path.join(ROOT, "scripts", "make_demo_experiments.py"))
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)       # dataclasses look the module up
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        rc = script.main(["--root", str(tmp_path), "--quick", "--no-export",
                          "--only", "DEMO_LOCAL_CONV", "DEMO_UNET_CONVLSTM"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert rc == 0 and "DEMO_LOCAL_CONV" in out and "final" in out
    for name in ("DEMO_LOCAL_CONV", "DEMO_UNET_CONVLSTM"):
        exp = E.load_experiment_config(name, tmp_path)
        res = exp.extra["DEMO_RESULTS"]
        assert res["FINAL_LOSS"] > 0 and "DEMO_OBJECTIVE" in exp.extra
        assert E.find_latest_checkpoint(name, tmp_path).endswith("checkpoint_ep3.pth")
        E.load_model_from_checkpoint(exp)
    res = E.load_experiment_config("DEMO_LOCAL_CONV", tmp_path).extra["DEMO_RESULTS"]
    assert res["FINAL_LOSS"] < 0.5 * res["INITIAL_LOSS"]

"""atheria_core.export.export_model_to_jit: trace/script, metadata, verification, cache."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atheria_core import experiments as E  # noqa: E402
from atheria_core import export as X  # noqa: E402
from atheria_core._model_loader import load_model_for_engine, quiet_jit_deprecation, read_metadata  # noqa: E402
from atheria_core.models import build_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


META_KEYS = {"format", "version", "architecture", "d_state", "has_memory", "unitary", "receptive_radius",
             "zero_preserving", "checkpoint_sha256", "torch_version"}


def _experiment(root, arch, params, name=None, grid=8):
    name = name or "X_" + arch
    E.save_experiment_config({"EXPERIMENT_NAME": name, "MODEL_ARCHITECTURE": arch, "MODEL_PARAMS": params,
                              "GRID_SIZE_TRAINING": grid}, root)
    torch.manual_seed(0)
    model = build_model(arch, params).eval()
    path = E.save_checkpoint(name, model, 2, root)
    return name, model, path


def _jit_load(path):
    with quiet_jit_deprecation():
        return torch.jit.load(path)


@pytest.mark.parametrize("arch,params,rr,zp", [
    ("UNET", {"d_state": 2, "hidden_channels": 4, "depth": 2}, None, False),
    ("UNET_UNITARY", {"d_state": 2, "hidden_channels": 4, "depth": 1}, None, False),
    ("LOCAL_CONV", {"d_state": 2, "hidden_channels": 4, "n_layers": 3}, 3, True),
])
def test_export_stateless(tmp_path, arch, params, rr, zp):
    name, model, ckpt = _experiment(tmp_path, arch, params)
    path = X.export_model_to_jit(ckpt)
    assert path == ckpt[:-4] + ".jit.pt" and os.path.isfile(path)
    meta = read_metadata(path)
    assert META_KEYS <= set(meta)
    assert meta["format"] == "atheria-torchscript" and meta["version"] == 1
    assert (meta["architecture"], meta["d_state"], meta["has_memory"]) == (arch, 2, False)
    assert meta["unitary"] == (arch == "UNET_UNITARY")
    assert meta["receptive_radius"] == rr and meta["zero_preserving"] is zp
    assert meta["checkpoint_sha256"] == E.sha256_file(ckpt) and meta["torch_version"] == str(torch.__version__)
    assert meta["export_method"] == "trace"
    sm = _jit_load(path)
    for shape in [(1, 4, 8, 8), (2, 4, 16, 12)]:          # also a size other than the trace's
        x = torch.randn(*shape)
        with torch.no_grad():
            assert float((sm(x) - model(x)).abs().max()) <= 1e-6


def test_export_convlstm_carries_memory(tmp_path):
    name, model, ckpt = _experiment(tmp_path, "UNET_CONVLSTM", {"d_state": 2, "hidden_channels": 4, "depth": 1})
    path = X.export_model_to_jit(name, root=tmp_path)
    meta = read_metadata(path)
    assert meta["has_memory"] is True and meta["architecture"] == "UNET_CONVLSTM"
    sm = _jit_load(path)
    x = torch.randn(1, 4, 12, 8)
    with torch.no_grad():
        h, c = sm.init_memory(x)
        he, ce = model.init_memory(x)
        assert h.shape == he.shape == (1, 8, 6, 4)
        outs = []
        for _ in range(3):
            d, h, c = sm(x, h, c)
            de, he, ce = model(x, he, ce)
            assert float((d - de).abs().max()) <= 1e-6 and float((h - he).abs().max()) <= 1e-6
            outs.append(d)
    assert float((outs[0] - outs[2]).abs().max()) > 1e-4      # memory changes the output


def test_cache_hit_and_reexport_on_change(tmp_path, monkeypatch):
    name, model, ckpt = _experiment(tmp_path, "LOCAL_CONV", {"d_state": 2, "hidden_channels": 4})
    path = X.export_model_to_jit(name, root=tmp_path)
    mtime = os.stat(path).st_mtime_ns
    calls = []
    real = X.export_module
    monkeypatch.setattr(X, "export_module", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert X.export_model_to_jit(ckpt) == path
    assert calls == [] and os.stat(path).st_mtime_ns == mtime            # cache hit
    # new weights in the same checkpoint file -> re-export
    torch.manual_seed(99)
    new_model = build_model("LOCAL_CONV", {"d_state": 2, "hidden_channels": 4}).eval()
    E.save_checkpoint(name, new_model, 2, tmp_path)
    assert X.export_model_to_jit(ckpt) == path and calls == [1]
    assert read_metadata(path)["checkpoint_sha256"] == E.sha256_file(ckpt)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert float((_jit_load(path)(x) - new_model(x)).abs().max()) <= 1e-6
    # force re-exports; a corrupt cache file is replaced
    X.export_model_to_jit(ckpt, force=True)
    assert calls == [1, 1]
    with open(path, "wb") as fh:
        fh.write(b"junk")
    X.export_model_to_jit(ckpt)
    assert calls == [1, 1, 1] and read_metadata(path)["checkpoint_sha256"] == E.sha256_file(ckpt)


def test_export_module_and_errors(tmp_path):
    m = build_model("UNET", {"d_state": 1, "hidden_channels": 2, "depth": 1}).eval()
    with pytest.raises(ValueError, match="output_path is required"):
        X.export_model_to_jit(m)
    out = X.export_model_to_jit(m, str(tmp_path / "m.pt"), grid_size=6)     # rounded to a multiple of 2
    meta = read_metadata(out)
    assert meta["checkpoint_sha256"] is None and meta["d_state"] == 1
    assert m.training is False
    # experiment without checkpoints
    E.save_experiment_config({"EXPERIMENT_NAME": "EMPTY", "MODEL_ARCHITECTURE": "UNET",
                              "MODEL_PARAMS": {"d_state": 1}, "GRID_SIZE_TRAINING": 8}, tmp_path)
    with pytest.raises(E.CheckpointNotFoundError):
        X.export_model_to_jit("EMPTY", root=tmp_path)
    with pytest.raises(E.ExperimentNotFoundError):
        X.export_model_to_jit("MISSING", root=tmp_path)
    with pytest.raises(E.CheckpointNotFoundError):
        X.export_model_to_jit(str(tmp_path / "nope.pth"))
    stray = tmp_path / "stray.pth"
    torch.save({"model_state_dict": m.state_dict()}, stray)
    with pytest.raises(ValueError, match="cannot infer the experiment"):
        X.export_model_to_jit(str(stray))


class _Noisy(torch.nn.Module):
    """Different output on every call: neither a trace nor a script can match it."""
    d_state = 1

    def forward(self, x):
        return x + torch.rand_like(x)


def test_verification_failure_raises(tmp_path):
    with pytest.raises(X.ExportError, match="differs from the eager model"):
        X.export_model_to_jit(_Noisy(), str(tmp_path / "n.pt"), grid_size=4)
    assert not os.path.exists(tmp_path / "n.pt")


def test_exported_file_runs_in_loader(tmp_path):
    name, model, ckpt = _experiment(tmp_path, "UNET", {"d_state": 2, "hidden_channels": 4, "depth": 1})
    path = X.export_model_to_jit(ckpt)
    lm = load_model_for_engine(path)
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(lm(x) - ref)) <= 1e-6

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


# --------------------------------------------------------------------------- AOTInductor .pt2 packages
# One tiny stateless and one tiny memory model, compiled once for the whole module (an
# AOTInductor compile runs the system C++ compiler: tens of seconds on a small machine).
import atheria_core as AC  # noqa: E402
from atheria_core import _model_loader as L  # noqa: E402
from atheria_core import _torch_support as TS  # noqa: E402

PT2_GRID = 8
PT2_SHA = "0" * 64


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    if X.aoti_unavailable_reason() is not None:
        pytest.skip(X.aoti_unavailable_reason())
    d = tmp_path_factory.mktemp("pt2")
    out = {"dir": d, "compile_s": {}}
    for key, arch in (("unet", "UNET"), ("lstm", "UNET_CONVLSTM")):
        torch.manual_seed(3)
        model = build_model(arch, {"d_state": 2, "hidden_channels": 4, "depth": 1}).eval()
        jit = X.export_module(model, str(d / f"{key}.jit.pt"), grid_size=PT2_GRID, checkpoint_sha256=PT2_SHA)
        path, secs = X.export_aoti_module(model, L.aoti_path_for(jit, PT2_GRID), grid_size=PT2_GRID,
                                          checkpoint_sha256=PT2_SHA)
        out[key], out[key + "_jit"], out[key + "_model"] = path, jit, model
        out["compile_s"][key] = secs
    return out


def test_pt2_metadata_and_cache_key(pt2):
    m = read_metadata(pt2["unet"])
    assert m.is_aoti and m.input_shape == (1, 4, PT2_GRID, PT2_GRID) and m.memory_shape is None
    assert m.checkpoint_sha256 == PT2_SHA and m.torch_version == torch.__version__ and m.device == "cpu"
    lm = read_metadata(pt2["lstm"])
    assert lm.has_memory and lm.memory_shape is not None and lm.memory_shape[0] == 1
    assert pt2["unet"].endswith(f".g{PT2_GRID}.pt2") and os.path.dirname(pt2["unet"]) == os.path.dirname(pt2["unet_jit"])
    assert X._aoti_cache_valid(pt2["unet"], PT2_SHA, PT2_GRID, 2)
    assert not X._aoti_cache_valid(pt2["unet"], "f" * 64, PT2_GRID, 2)      # another checkpoint
    assert not X._aoti_cache_valid(pt2["unet"], PT2_SHA, 2 * PT2_GRID, 2)   # another grid size


def _trajectory(engine, steps=4, seed=5):
    rng = np.random.default_rng(seed)
    psi = (rng.standard_normal((PT2_GRID, PT2_GRID, 2)) + 1j * rng.standard_normal((PT2_GRID, PT2_GRID, 2)))
    engine.set_state(psi.astype(np.complex64))
    engine.step(steps)
    return engine.get_state()


@pytest.mark.parametrize("key", ["unet", "lstm"])
def test_pt2_routes_match_torchscript(pt2, key, monkeypatch):
    """aoti-shim, aoti-python and TorchScript give the same trajectory (memory carried for ConvLSTM)."""
    got = {}
    for route_env in ({}, {"ATHERIA_NO_SHIM": "1"}, {"ATHERIA_NO_AOTI": "1"}):
        for k in ("ATHERIA_NO_SHIM", "ATHERIA_NO_AOTI"):
            monkeypatch.delenv(k, raising=False)
        for k, v in route_env.items():
            monkeypatch.setenv(k, v)
        e = AC.DenseEngine(PT2_GRID, 2)
        model, report = L.select_model(e, pt2[key + "_jit"])
        e.set_model(model)
        got[report.route] = _trajectory(e)
    expect = {"aoti-python", "torchscript-shim" if TS.shim_available() else "torchscript-python"}
    if TS.shim_available():
        expect.add("aoti-shim")
    assert set(got) == expect
    ref = got.pop("torchscript-shim", None)
    ref = got.pop("torchscript-python") if ref is None else ref
    for route, psi in got.items():
        assert float(np.max(np.abs(psi - ref))) <= 1e-5, route


def test_pt2_memory_is_carried_and_reset(pt2):
    e = AC.DenseEngine(PT2_GRID, 2)
    assert e.load_model(pt2["lstm"]) is True, e.get_last_error()
    a = _trajectory(e, steps=3)
    e.clear()
    b = _trajectory(e, steps=3)
    np.testing.assert_array_equal(a, b)           # clear() resets h, c to the zero memory
    one = AC.DenseEngine(PT2_GRID, 2)
    one.load_model(pt2["lstm"])
    rng = np.random.default_rng(5)
    psi = (rng.standard_normal((PT2_GRID, PT2_GRID, 2)) + 1j * rng.standard_normal((PT2_GRID, PT2_GRID, 2)))
    one.set_state(psi.astype(np.complex64))
    for _ in range(3):                            # memory reset before every step
        field = one.get_state()
        one.clear()
        one.set_state(field)
        one.step(1)
    assert float(np.max(np.abs(one.get_state() - a))) > 1e-7


def test_route_selection_reports_why_faster_routes_were_skipped(pt2, caplog):
    caplog.set_level("INFO", logger="atheria_core")
    big = AC.DenseEngine(2 * PT2_GRID, 2)
    _, report = L.select_model(big, pt2["unet_jit"])
    assert report.route.startswith("torchscript")
    assert any(r == "aoti" and f"g{2 * PT2_GRID}.pt2" in why for r, why in report.skipped)
    sparse = AC.Engine(2, grid_size=PT2_GRID, extent="zero")
    _, report = L.select_model(sparse, pt2["unet_jit"])
    assert any("sparse" in why for _, why in report.skipped)
    assert "skipped" in caplog.text and "runs on route" in caplog.text


def test_route_speed_record_decides_between_package_and_torchscript(pt2, monkeypatch):
    """export times the package against frozen TorchScript once and records it; the loader skips
    the package when TorchScript was faster, until the package is written again."""
    from atheria_core import _route_speed as RS
    pkg, jit = pt2["unet"], pt2["unet_jit"]
    monkeypatch.delenv("ATHERIA_ROUTE_SPEED", raising=False)
    try:
        path = X.record_route_speed(pkg, jit)
        rec = RS.read(pkg)
        assert path == RS.record_path(pkg) and rec is not None
        assert rec["aoti_ms"] > 0 and rec["torchscript_ms"] > 0 and rec["threads"] >= 1
        # a record that says TorchScript ran 10x faster: the loader takes the TorchScript route
        RS.write(pkg, aoti_ms=10.0, torchscript_ms=1.0, threads=2, torch_version=torch.__version__)
        _, report = L.select_model(AC.DenseEngine(PT2_GRID, 2), jit)
        assert report.route.startswith("torchscript"), report
        assert any(r == "aoti" and "speed.json" in why and "10 ms" in why for r, why in report.skipped)
        monkeypatch.setenv("ATHERIA_ROUTE_SPEED", "0")                 # records ignored
        _, report = L.select_model(AC.DenseEngine(PT2_GRID, 2), jit)
        assert report.route.startswith("aoti"), report
        monkeypatch.delenv("ATHERIA_ROUTE_SPEED")
        # within the margin the package keeps its place
        RS.write(pkg, aoti_ms=1.0, torchscript_ms=0.97, threads=2, torch_version=torch.__version__)
        assert RS.torchscript_faster(pkg) is None
        # a package written again after its timing: the record no longer counts
        RS.write(pkg, aoti_ms=10.0, torchscript_ms=1.0, threads=2, torch_version=torch.__version__)
        st = os.stat(pkg)
        os.utime(pkg, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
        assert RS.read(pkg) is None and RS.torchscript_faster(pkg) is None
        _, report = L.select_model(AC.DenseEngine(PT2_GRID, 2), jit)
        assert report.route.startswith("aoti"), report
        # a damaged record is ignored (logged), never fatal
        with open(RS.record_path(pkg), "wb") as fh:
            fh.write(b"{not json")
        assert RS.read(pkg) is None
    finally:
        if os.path.exists(RS.record_path(pkg)):
            os.unlink(RS.record_path(pkg))


def test_explicit_pt2_for_another_grid_is_refused_with_file_and_cause(pt2, ac):
    e = ac.DenseEngine(2 * PT2_GRID, 2)
    assert e.load_model(model_path=pt2["unet"]) is False
    msg = e.get_last_error()
    assert msg.startswith(f"cannot load model {pt2['unet']}: ") and "compiled for inputs" in msg
    assert not e.has_model()
    ok = ac.DenseEngine(PT2_GRID, 2)
    assert ok.load_model(pt2["unet"]) is True, ok.get_last_error()


def test_stale_package_of_another_checkpoint_is_skipped(pt2, tmp_path):
    import json
    import shutil
    import zipfile
    jit = str(tmp_path / "m.jit.pt")
    shutil.copy(pt2["unet_jit"], jit)
    stale = L.aoti_path_for(jit, PT2_GRID)
    with zipfile.ZipFile(pt2["unet"]) as zin, zipfile.ZipFile(stale, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("_metadata.json") and b"atheria_meta" in data:
                outer = json.loads(data)
                inner = json.loads(outer["atheria_meta"])
                inner["checkpoint_sha256"] = "f" * 64
                outer["atheria_meta"] = json.dumps(inner)
                data = json.dumps(outer).encode()
            zout.writestr(info, data)
    _, report = L.select_model(AC.DenseEngine(PT2_GRID, 2), jit)
    assert report.route.startswith("torchscript")
    assert any("another checkpoint" in why for _, why in report.skipped)


def test_shim_aoti_primitive_errors(pt2, tmp_path):
    if not TS.shim_available():
        pytest.skip(TS.unavailable_reason())
    from atheria_core import _core
    with pytest.raises(FileNotFoundError) as ei:
        _core._aoti_load(TS.shim_path(), str(tmp_path / "none.pt2"), "cpu", [1, 4, 8, 8])
    assert ei.value.kind == "not_found" and "none.pt2" in str(ei.value)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(OSError) as ei:
        _core._aoti_load(TS.shim_path(), str(junk), "cpu", [1, 4, 8, 8])
    assert ei.value.kind == "corrupt" and str(junk) in str(ei.value)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError) as ei:
            _core._aoti_load(TS.shim_path(), pt2["unet"], "cuda", [1, 4, 8, 8])
        assert ei.value.kind == "cuda_unavailable"
    cap = _core._aoti_load(TS.shim_path(), pt2["unet"], "cpu", [1, 4, 8, 8])
    with pytest.raises(ValueError, match="compiled for inputs"):
        _core._model_forward(cap, np.zeros((1, 4, 16, 16), np.float32))
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = pt2["unet_model"](torch.from_numpy(x)).numpy()
    assert float(np.max(np.abs(_core._model_forward(cap, x) - ref))) <= 1e-5


def test_no_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(X.shutil, "which", lambda name: None)
    assert "no C++ compiler" in X.aoti_unavailable_reason()
    model = build_model("UNET", {"d_state": 2, "hidden_channels": 4, "depth": 1}).eval()
    with pytest.raises(X.AotiUnavailableError, match="no C\\+\\+ compiler"):
        X.export_aoti_module(model, str(tmp_path / "m.pt2"), grid_size=8)

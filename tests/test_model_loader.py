"""atheria_core._model_loader / _metadata: the one metadata reader, the Python routes and the
load_model contract on both backends (docs/torchscript.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atheria_core import _model_loader as L  # noqa: E402
from atheria_core.export import export_model_to_jit  # noqa: E402
from atheria_core.models import build_model  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("jit")
    torch.manual_seed(0)
    unet = build_model("UNET", {"d_state": 2, "hidden_channels": 4, "depth": 1}).eval()
    lstm = build_model("UNET_CONVLSTM", {"d_state": 2, "hidden_channels": 4, "depth": 1}).eval()
    local = build_model("LOCAL_CONV", {"d_state": 2, "hidden_channels": 4}).eval()
    out = {"unet_model": unet, "lstm_model": lstm, "local_model": local, "dir": d}
    out["unet"] = export_model_to_jit(unet, str(d / "unet.pt"), grid_size=8)
    out["lstm"] = export_model_to_jit(lstm, str(d / "lstm.pt"), grid_size=8)
    out["local"] = export_model_to_jit(local, str(d / "local.pt"), grid_size=8)
    with L.quiet_jit_deprecation():
        torch.jit.save(torch.jit.trace(unet, torch.randn(1, 4, 8, 8)), str(d / "plain.pt"))
    out["plain"] = str(d / "plain.pt")
    return out


def _err(path, kind, device="cpu"):
    with pytest.raises(L.ModelLoadError) as ei:
        L.load_model_for_engine(str(path), device)
    assert ei.value.kind == kind, str(ei.value)
    assert str(path) in str(ei.value)
    return ei.value


def test_missing_file(tmp_path):
    p = tmp_path / "nope.pt"
    e = _err(p, "not_found")
    assert isinstance(e, FileNotFoundError) and isinstance(e, RuntimeError)
    assert str(e) == f"JIT model not found: {p}"
    _err(tmp_path, "not_a_file")


def test_text_file(tmp_path):
    p = tmp_path / "model.pt"
    p.write_text("hello, I am not a model\n")
    assert "not a zip file" in str(_err(p, "not_zip"))


def test_truncated_file(tmp_path, files):
    data = open(files["unet"], "rb").read()
    for frac in (0.5, 0.95):
        p = tmp_path / f"trunc{frac}.pt"
        p.write_bytes(data[: int(len(data) * frac)])
        assert "truncated or corrupt" in str(_err(p, "corrupt"))


def test_zip_that_is_not_torchscript(tmp_path):
    p = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}}, p)           # torch.save zip, no code/
    assert "export it with" in str(_err(p, "not_torchscript"))
    z = tmp_path / "other.pt"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hi")
    _err(z, "not_torchscript")
    empty = tmp_path / "empty.pt"
    with zipfile.ZipFile(empty, "w"):
        pass
    _err(empty, "not_torchscript")


def test_corrupt_member(tmp_path, files):
    """Flip bytes in a stored tensor: the zip directory is intact but torch.jit.load fails."""
    data = bytearray(open(files["unet"], "rb").read())
    with zipfile.ZipFile(files["unet"]) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start, start + min(info.compress_size, 64)):
        data[i] ^= 0xFF
    p = tmp_path / "flipped.pt"
    p.write_bytes(bytes(data))
    _err(p, "corrupt")


def test_cuda_unavailable_and_bad_device(files):
    if not torch.cuda.is_available():
        assert "CUDA is not available" in str(_err(files["unet"], "cuda_unavailable", "cuda"))
        _err(files["unet"], "cuda_unavailable", "cuda:0")
    _err(files["unet"], "bad_device", "tpu")
    _err(files["unet"], "bad_device", "meta")


def _rewrite_meta(src, dst, meta_text):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/extra/atheria_meta.json"):
                data = meta_text.encode()
            zout.writestr(info, data)


def test_bad_and_newer_metadata(tmp_path, files):
    meta = L.read_metadata(files["unet"])
    p = tmp_path / "v2.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta.raw, version=2)))
    _err(p, "incompatible")
    p = tmp_path / "badjson.pt"
    _rewrite_meta(files["unet"], p, "{not json")
    _err(p, "bad_metadata")
    p = tmp_path / "fmt.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta.raw, format="other")))
    _err(p, "bad_metadata")


def test_read_metadata(files, tmp_path):
    meta = L.read_metadata(files["local"])
    assert meta.architecture == "LOCAL_CONV" and meta.receptive_radius == 2 and meta.zero_preserving is True
    assert meta["architecture"] == "LOCAL_CONV"          # the raw JSON stays readable
    assert meta.native_equivalent is not None and meta.native_equivalent.n_layers >= 1
    assert L.read_metadata(files["plain"]) is None
    with pytest.raises(L.ModelNotFoundError):
        L.read_metadata(str(tmp_path / "x.pt"))


def test_stateless_call_matches_torch(files):
    lm = L.load_model_for_engine(files["unet"])
    assert lm.has_memory is False and lm.receptive_radius == -1 and lm.zero_preserving is False
    assert lm.d_state == 2 and lm.architecture == "UNET" and lm.unitary is False
    x = np.random.default_rng(1).standard_normal((3, 4, 8, 6)).astype(np.float32)
    y = lm(x)
    assert y.dtype == np.float32 and y.shape == x.shape and y.flags.c_contiguous
    with torch.no_grad():
        ref = files["unet_model"](torch.from_numpy(x)).numpy()
    assert np.max(np.abs(y - ref)) <= 1e-6
    assert np.array_equal(lm(x[:, :, ::-1, :]), lm(np.ascontiguousarray(x[:, :, ::-1, :])))  # non-contiguous ok
    with pytest.raises(ValueError, match="float32"):
        lm(x.astype(np.float64))
    with pytest.raises(ValueError, match="4-D"):
        lm(x[0])
    with pytest.raises(ValueError, match="channels"):
        lm(np.zeros((1, 3, 8, 8), np.float32))


def test_local_attributes(files):
    lm = L.load_model_for_engine(files["local"])
    assert lm.receptive_radius == 2 and lm.zero_preserving is True
    assert not np.any(lm(np.zeros((2, 4, 5, 5), np.float32)))


def test_plain_torchscript_without_metadata(files):
    lm = L.load_model_for_engine(files["plain"])
    assert lm.metadata is None and lm.receptive_radius == -1 and lm.has_memory is False
    assert not hasattr(lm, "zero_preserving")                 # unknown -> attribute omitted
    x = np.random.default_rng(2).standard_normal((1, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        assert np.max(np.abs(lm(x) - files["unet_model"](torch.from_numpy(x)).numpy())) <= 1e-6


def test_memory_protocol(files):
    lm = L.load_model_for_engine(files["lstm"])
    m = files["lstm_model"]
    assert lm.has_memory and lm.get_memory() is None
    x = np.random.default_rng(3).standard_normal((1, 4, 8, 8)).astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        h, c = m.init_memory(xt)
        d1, h1, c1 = m(xt, h, c)
        d2, h2, c2 = m(xt, h1, c1)
    a = lm(x)
    assert np.max(np.abs(a - d1.numpy())) <= 1e-6
    assert np.array_equal(lm(x), a)                 # uncommitted: same memory, same output
    lm.discard_memory()
    assert np.array_equal(lm(x), a)
    lm.commit_memory()
    b = lm(x)
    assert np.max(np.abs(b - d2.numpy())) <= 1e-6 and np.max(np.abs(b - a)) > 1e-4
    gh, gc = lm.get_memory()
    assert np.max(np.abs(gh - h1.numpy())) <= 1e-6
    with pytest.raises(ValueError, match="reset_memory"):
        lm(np.zeros((1, 4, 16, 8), np.float32))    # another grid needs a reset first
    lm.reset_memory()
    assert np.array_equal(lm(x), a)
    lm.set_memory(gh, gc, x.shape)                  # restore from a snapshot
    assert np.max(np.abs(lm(x) - b)) <= 1e-6


def test_importable_without_torch(files):
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("blocked torch")
sys.meta_path.insert(0, Block())
sys.path.insert(0, {os.path.join(ROOT, 'python')!r})
from atheria_core import _model_loader as L
assert L.read_metadata({files['local']!r}).receptive_radius == 2
try:
    L.load_model_for_engine({files['local']!r})
except L.ModelLoadError as e:
    assert e.kind == "no_torch" and "torch is not installed" in str(e), e
    print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr


# --------------------------------------------------------------------------- hardening (issue 7, defect 7)
def _meta_err(path, kind):
    """read_metadata and load_model_for_engine both refuse the file as '<file>: <cause>'."""
    for fn in (L.read_metadata, L.load_model_for_engine):
        with pytest.raises(L.ModelLoadError) as ei:
            fn(str(path))
        assert ei.value.kind == kind, str(ei.value)
        assert str(ei.value).startswith(f"cannot load model {path}: "), str(ei.value)
    return str(ei.value)


def test_deeply_nested_and_huge_integer_metadata(tmp_path, files):
    meta = L.read_metadata(files["unet"]).raw
    p = tmp_path / "deep.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta, x="_")).replace('"_"', "[" * 100000 + "]" * 100000))
    assert "nests deeper" in _meta_err(p, "bad_metadata")
    p = tmp_path / "bigint.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta, d_state=0)).replace('"d_state": 0', '"d_state": ' + "9" * 5000))
    assert "digits" in _meta_err(p, "bad_metadata")
    p = tmp_path / "bigd.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta, d_state=10 ** 12)))
    assert "d_state" in _meta_err(p, "bad_metadata")


@pytest.mark.parametrize("value", ["conv", 3, [1], {"kind": "conv_stack", "n_layers": "2"},
                                   {"kind": "conv_stack", "n_layers": 2, "bias": "no"},
                                   {"kind": "conv_stack", "n_layers": 2, "activation": 7}])
def test_wrong_typed_native_equivalent(tmp_path, files, value):
    p = tmp_path / "ne.pt"
    _rewrite_meta(files["local"], p, json.dumps(dict(L.read_metadata(files["local"]).raw, native_equivalent=value)))
    assert "native_equivalent" in _meta_err(p, "bad_metadata")


@pytest.mark.parametrize("key,value", [("has_memory", "yes"), ("receptive_radius", -3), ("unitary", 1),
                                       ("architecture", 5), ("zero_preserving", "true")])
def test_wrong_typed_fields(tmp_path, files, key, value):
    p = tmp_path / "f.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(L.read_metadata(files["unet"]).raw, **{key: value})))
    assert key in _meta_err(p, "bad_metadata")


def test_non_utf8_metadata_and_code(tmp_path, files):
    p = tmp_path / "latin.pt"
    with zipfile.ZipFile(files["unet"]) as zin, zipfile.ZipFile(p, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/extra/atheria_meta.json"):
                data = data.replace(b'"UNET"', b'"UN\xe9T"'.decode("unicode_escape").encode("latin-1"))
            zout.writestr(info, data)
    assert "UTF-8" in _meta_err(p, "bad_metadata")
    q = tmp_path / "code.pt"
    with zipfile.ZipFile(files["unet"]) as zin, zipfile.ZipFile(q, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                data = b"\xff\xfe\xfa" + data
            zout.writestr(info, data)
    with pytest.raises(L.ModelLoadError) as ei:
        L.load_model_for_engine(str(q))
    assert ei.value.kind == "corrupt" and str(q) in str(ei.value)


def test_metadata_member_size_is_capped(tmp_path, files):
    """A member that inflates to 300 MB is refused after reading at most the cap (RSS stays small)."""
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(files["unet"]) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename.endswith("/extra/atheria_meta.json"):
                with zout.open(info.filename, "w", force_zip64=True) as fh:
                    chunk = b" " * (1 << 20)
                    fh.write(b"{")
                    for _ in range(300):
                        fh.write(chunk)
                    fh.write(b"}")
            else:
                zout.writestr(info, zin.read(info))
    assert os.path.getsize(bomb) < 3 * (1 << 20)
    code = f"""
import resource, sys
sys.path.insert(0, {os.path.join(ROOT, 'python')!r})
from atheria_core import _metadata as M
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    M.read_metadata({str(bomb)!r})
except M.ModelLoadError as e:
    assert e.kind == "bad_metadata" and "limit" in str(e), e
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("GROWTH_KB", after - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    growth_kb = int(out.stdout.split("GROWTH_KB")[1])
    assert growth_kb < 64 * 1024, growth_kb          # far below the 300 MB the member inflates to


def test_error_kinds_are_the_c_table():
    from atheria_core import _core, _metadata as M
    table = tuple(tuple(r) for r in _core._load_error_kinds())
    assert table == M._ERROR_TABLE_COPY
    assert set(L.ERROR_KINDS) == {k for k, _ in table} - {"ok"}
    import builtins
    for _, exc in table:
        assert issubclass(getattr(builtins, exc), BaseException)


@pytest.mark.filterwarnings("ignore:Engine.*receptive radius:RuntimeWarning")
def test_load_model_keyword_and_mismatch_on_both_backends(ac, files):
    e = ac.DenseEngine(8, 2)
    assert e.load_model(model_path=files["unet"]) is True and e.get_last_error() == ""
    assert e.load_model(path=files["unet"]) is True
    with pytest.raises(TypeError):
        e.load_model()
    with pytest.raises(TypeError):
        e.load_model(files["unet"], model_path=files["unet"])
    s = ac.Engine(2, grid_size=8, extent="zero")
    assert s.load_model(model_path=files["local"]) is True
    wrong = ac.DenseEngine(8, 3)
    assert wrong.load_model(model_path=files["unet"]) is False
    msg = wrong.get_last_error()
    assert msg.startswith(f"cannot load model {files['unet']}: ") and "d_state 2" in msg and "3" in msg
    assert not wrong.has_model()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_load_model_does_not_swallow_interrupts(ac, files, monkeypatch, exc):
    def boom(engine, path):
        raise exc()
    monkeypatch.setattr(L, "select_model", boom)
    e = ac.DenseEngine(8, 2)
    with pytest.raises(exc):
        e.load_model(files["unet"])
    assert not e.has_model()


def test_load_model_error_names_file_and_cause_for_every_route_failure(ac, tmp_path):
    e = ac.DenseEngine(8, 2)
    p = tmp_path / "junk.pt"
    p.write_bytes(b"junk")
    assert e.load_model(str(p)) is False
    assert str(p) in e.get_last_error() and "not a zip" in e.get_last_error()
    assert e.load_model(str(tmp_path / "none.pt")) is False
    assert e.get_last_error() == f"JIT model not found: {tmp_path / 'none.pt'}"


def test_optimize_is_a_size_rule_and_keeps_only_exact_frozen_modules():
    """Below OPTIMIZE_MIN_CELLS the plain module runs (the same choice in every process, so a
    resumed run stays bit-identical); above it a frozen copy is kept only when it matches the
    plain module within OPTIMIZE_TOL."""
    import torch
    from atheria_core import _model_loader as L
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.GELU(),
                              torch.nn.Conv2d(8, 4, 3, padding=1)).eval()
    scripted = torch.jit.script(net)
    small, note = L.optimize_script_module(torch, scripted, False, (1, 4, 32, 32), torch.device("cpu"))
    assert small is scripted and "below" in note, note
    assert L.shim_should_optimize((1, 4, 32, 32))[0] is False
    assert L.shim_should_optimize((1, 4, 128, 128)) == (True, "") and L.shim_should_optimize(None) == (True, "")
    big, note = L.optimize_script_module(torch, scripted, False, (1, 4, 128, 128), torch.device("cpu"))
    x = torch.randn(1, 4, 128, 128)
    with torch.no_grad():
        ref, got = scripted(x), big(x)
    assert float((got - ref).abs().max() / ref.abs().max()) <= L.OPTIMIZE_TOL
    assert (big is scripted) != note.startswith("frozen + optimize_for_inference"), note

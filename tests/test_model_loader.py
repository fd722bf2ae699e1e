"""atheria_core._model_loader: the Python route of load_model (docs/torchscript.md)."""
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
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta, version=2)))
    _err(p, "incompatible")
    p = tmp_path / "badjson.pt"
    _rewrite_meta(files["unet"], p, "{not json")
    _err(p, "bad_metadata")
    p = tmp_path / "fmt.pt"
    _rewrite_meta(files["unet"], p, json.dumps(dict(meta, format="other")))
    _err(p, "bad_metadata")


def test_read_metadata(files, tmp_path):
    meta = L.read_metadata(files["local"])
    assert meta["architecture"] == "LOCAL_CONV" and meta["receptive_radius"] == 2 and meta["zero_preserving"]
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
assert L.read_metadata({files['local']!r})["receptive_radius"] == 2
try:
    L.load_model_for_engine({files['local']!r})
except L.ModelLoadError as e:
    assert e.kind == "no_torch" and "torch is not installed" in str(e), e
    print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr

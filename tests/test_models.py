"""atheria_core.models: registry, shapes, flags, locality, TorchScript-ability."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atheria_core import models as M  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


D = 3


def _params(**kw):
    p = {"d_state": D, "hidden_channels": 4}
    p.update(kw)
    return p


def test_registry_names_and_classes():
    assert set(M.available_architectures()) >= {"UNET", "UNET_UNITARY", "UNET_CONVLSTM", "LOCAL_CONV"}
    assert M.get_model_class("UNET") is M.UNet
    assert M.get_model_class(" unet_unitary ") is M.UNetUnitary
    assert M.get_model_class("UNET_CONVLSTM") is M.UNetConvLSTM
    assert M.get_model_class("local_conv") is M.LocalConv
    for name, cls in M.MODEL_REGISTRY.items():
        assert cls.architecture == name


@pytest.mark.parametrize("arch,unitary,memory,radius,zp", [
    ("UNET", False, False, None, False),
    ("UNET_UNITARY", True, False, None, False),
    ("UNET_CONVLSTM", False, True, None, False),
    ("LOCAL_CONV", False, False, 2, True),
])
def test_flags_and_shapes(arch, unitary, memory, radius, zp):
    m = M.build_model(arch, _params()).eval()
    assert (m.unitary, m.has_memory, m.receptive_radius, m.zero_preserving) == (unitary, memory, radius, zp)
    assert M.model_metadata(m) == {"architecture": arch, "d_state": D, "unitary": unitary, "has_memory": memory,
                                   "receptive_radius": radius, "zero_preserving": zp}
    x = torch.randn(2, 2 * D, 8, 12)
    with torch.no_grad():
        if memory:
            h, c = m.init_memory(x)
            assert h.shape == c.shape == (2, 4 * 4, 2, 3)    # hidden·2**depth, H/4, W/4
            assert float(h.abs().sum()) == 0.0 and float(c.abs().sum()) == 0.0
            y, h2, c2 = m(x, h, c)
            assert h2.shape == h.shape and c2.shape == c.shape
        else:
            y = m(x)
    assert y.shape == x.shape and y.dtype == torch.float32


def test_unknown_architecture():
    with pytest.raises(M.UnknownArchitectureError, match="unknown model architecture 'FOO'.*UNET"):
        M.build_model("FOO", _params())
    with pytest.raises(KeyError):          # also a KeyError and a ValueError
        M.get_model_class("nope")
    with pytest.raises(ValueError):
        M.build_model(None, _params())


@pytest.mark.parametrize("params,match", [
    ({"hidden_channels": 4}, "missing required key.*d_state"),
    (_params(bogus=1), r"unknown key\(s\) \['bogus'\]"),
    (_params(d_state="4"), "d_state must be an int"),
    (_params(d_state=True), "d_state must be an int"),
    (_params(d_state=0), "d_state must be >= 1"),
    (_params(hidden_channels=2.0), "hidden_channels must be an int"),
    (_params(depth=0), "depth must be >= 1"),
    (_params(activation="swish"), "activation must be one of"),
    ([("d_state", 4)], "must be a mapping"),
])
def test_bad_params(params, match):
    with pytest.raises(M.ModelParamsError, match=match):
        M.build_model("UNET", params)


def test_local_conv_bad_params():
    with pytest.raises(M.ModelParamsError, match="kernel_size must be odd"):
        M.build_model("LOCAL_CONV", _params(kernel_size=4))
    with pytest.raises(M.ModelParamsError, match="activation"):
        M.build_model("LOCAL_CONV", _params(activation="silu"))   # not offered by the native ConvModel


def test_unet_size_rule():
    m = M.UNet(D, 4, depth=2).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 2 * D, 4, 20)).shape == (1, 2 * D, 4, 20)
        with pytest.raises(ValueError, match="multiples of 2\\*\\*depth = 4"):
            m(torch.randn(1, 2 * D, 6, 8))
        with pytest.raises(ValueError, match="expected input of shape"):
            m(torch.randn(1, 2 * D + 1, 8, 8))


def test_convlstm_memory_changes_output():
    torch.manual_seed(0)
    m = M.UNetConvLSTM(D, 4, depth=1).eval()
    x = torch.randn(1, 2 * D, 8, 8)
    with torch.no_grad():
        h0, c0 = m.init_memory(x)
        d1, h1, c1 = m(x, h0, c0)
        d2, _, _ = m(x, h1, c1)
        d1b, _, _ = m(x, h0, c0)
    assert float((d1 - d2).abs().max()) > 1e-3          # memory matters
    assert torch.equal(d1, d1b)                          # same memory, same output
    with pytest.raises(ValueError, match="memory h, c must have shape"):
        m(x, torch.zeros(1, 8, 3, 3), torch.zeros(1, 8, 3, 3))


def test_local_conv_zero_and_no_bias():
    m = M.LocalConv(D, 5, n_layers=3, kernel_size=3, activation="gelu").eval()
    assert all(p.dim() == 4 for p in m.parameters())     # only conv weights, no biases
    with torch.no_grad():
        assert float(m(torch.zeros(2, 2 * D, 7, 9)).abs().max()) == 0.0


@pytest.mark.parametrize("n_layers,k", [(2, 3), (3, 3), (1, 5), (2, 5)])
def test_local_conv_receptive_field(n_layers, k):
    torch.manual_seed(1)
    m = M.LocalConv(D, 6, n_layers=n_layers, kernel_size=k, activation="tanh").double().eval()
    r = m.receptive_radius
    assert r == n_layers * (k // 2)
    n = 2 * r + 9
    x = torch.randn(1, 2 * D, n, n, dtype=torch.float64)
    cy, cx = n // 2, n // 2 + 1
    x2 = x.clone()
    x2[0, :, cy, cx] += 1.0
    with torch.no_grad():
        diff = (m(x2) - m(x)).abs().amax(dim=(0, 1)).numpy()
    yy, xx = np.mgrid[0:n, 0:n]
    cheb = np.maximum(abs(yy - cy), abs(xx - cx))
    assert diff[cheb > r].max() == 0.0                  # nothing outside the radius changes
    assert diff[cheb == r].min() > 0.0                  # the radius is tight (generic weights)


def test_local_conv_conv_model_spec():
    m = M.LocalConv(D, 6, n_layers=2, activation="relu")
    spec = m.conv_model_spec()
    assert spec["activation"] == "relu" and spec["biases"] is None
    assert [w.shape for w in spec["weights"]] == [(6, 2 * D, 3, 3), (2 * D, 6, 3, 3)]
    assert all(w.dtype == np.float32 for w in spec["weights"])


@pytest.mark.parametrize("arch", ["UNET", "UNET_UNITARY", "UNET_CONVLSTM", "LOCAL_CONV"])
def test_scriptable(arch):
    m = M.build_model(arch, _params()).eval()
    s = torch.jit.script(m)
    x = torch.randn(1, 2 * D, 8, 16)
    with torch.no_grad():
        if m.has_memory:
            h, c = s.init_memory(x)
            a, b = m(x, h, c), s(x, h, c)
            for ta, tb in zip(a, b):
                assert torch.allclose(ta, tb, atol=1e-6)
        else:
            assert torch.allclose(m(x), s(x), atol=1e-6)


def test_model_params_rebuild():
    for arch in M.available_architectures():
        m = M.build_model(arch, _params())
        m2 = M.build_model(arch, m.model_params)
        m2.load_state_dict(m.state_dict())          # same architecture


def test_local_conv_matches_native_conv_model():
    import atheria_core as ac
    for act in ("tanh", "relu", "gelu", "identity"):
        m = M.LocalConv(D, 5, n_layers=2, activation=act).eval()
        cm = ac.ConvModel(**m.conv_model_spec())
        assert cm.receptive_radius == m.receptive_radius and cm.zero_preserving
        x = np.random.default_rng(0).standard_normal((2, 2 * D, 7, 9)).astype(np.float32)
        with torch.no_grad():
            ref = m(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(cm(x) - ref)) < 1e-5, act

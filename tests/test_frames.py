"""PNG frames (atheria_core.frames): colormaps are matplotlib's, every style renders, files read back."""
from __future__ import annotations

import math

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
matplotlib = pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from atheria_core import frames  # noqa: E402


def test_lut_is_matplotlibs():
    lut = frames.colormap_lut("viridis")
    ref = matplotlib.colormaps["viridis"]
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[0], np.round(np.array(ref(0.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(lut[255], np.round(np.array(ref(1.0)[:3]) * 255).astype(np.uint8))


def test_scalar_uses_the_data_range_and_phase_a_fixed_cyclic_one():
    d = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    rgb = frames.frame_to_rgb(d, "density")
    lut = frames.colormap_lut("viridis")
    np.testing.assert_array_equal(rgb[0, 0], lut[0])
    np.testing.assert_array_equal(rgb[1, 1], lut[255])
    ph = frames.frame_to_rgb(np.array([[-math.pi, 0.0, math.pi]]), "phase")
    tw = frames.colormap_lut("twilight")
    np.testing.assert_array_equal(ph[0, 0], tw[0])
    np.testing.assert_array_equal(ph[0, 2], tw[255])
    # twilight is cyclic: both ends of the phase range get (nearly) the same colour
    assert np.max(np.abs(ph[0, 0].astype(int) - ph[0, 2].astype(int))) <= 3


def test_real_is_symmetric_about_zero():
    rgb = frames.frame_to_rgb(np.array([[-1.0, 0.0, 0.5]]), "real")
    lut = frames.colormap_lut("RdBu_r")
    np.testing.assert_array_equal(rgb[0, 1], lut[128])


def test_rgb_and_stack_styles():
    img = np.zeros((4, 5, 3))
    img[..., 0] = 1.0
    out = frames.frame_to_rgb(img, "holographic")
    assert out.shape == (4, 5, 3) and np.all(out[..., 0] == 255) and np.all(out[..., 1] == 0)
    stack = np.stack([np.zeros((4, 5)), np.ones((4, 5))])
    out = frames.frame_to_rgb(stack, "holographic_bulk")
    assert out.shape == (4, 11, 3)   # two tiles and a 1-pixel gap


def test_payload_png_round_trip(tmp_path):
    payload = {"type": "energy", "data": np.random.default_rng(0).random((6, 7)).astype(np.float32)}
    path = frames.save_frame(tmp_path / "f.png", payload, scale=3)
    back = np.asarray(Image.open(path).convert("RGB"))
    assert back.shape == (18, 21, 3)
    np.testing.assert_array_equal(back[::3, ::3], frames.frame_to_rgb(payload))


def test_register_and_bad_input():
    with pytest.raises(ValueError, match="no style"):
        frames.frame_to_rgb(np.zeros((2, 2)), "nonexistent")
    frames.register_viz_style("my_map", frames.VizStyle(cmap="magma"))
    assert frames.frame_to_rgb(np.zeros((2, 2)), "my_map").shape == (2, 2, 3)
    with pytest.raises(ValueError):
        frames.register_viz_style("x", frames.VizStyle(kind="video"))
    with pytest.raises(ValueError):
        frames.frame_to_rgb(np.zeros((2, 2, 2)), "density")
    with pytest.raises(ValueError):
        frames.frame_to_image(np.zeros((2, 2)), "density", scale=0)


def test_engine_frames(tmp_path):
    import atheria_core as ac
    e = ac.DenseEngine(8, 2)
    for vt in ("density", "phase", "energy", "real", "imag", "gradient"):
        frames.save_frame(tmp_path / f"{vt}.png", e.compute_visualization(vt), vt)
    assert len(list(tmp_path.iterdir())) == 6

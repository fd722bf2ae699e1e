"""A client of the ORIGINAL atheria_core module (C++/pybind11, Atheria 5.0.0), written the way
the original backend (src/engines/native_engine_wrapper.py) used it: nothing here knows about
our API.  tests/test_compat.py runs it in a subprocess with ATHERIA_API=original, on both
backends.  Usage: python original_client.py MODEL_PATH.  Exit status 0 when every check holds.
"""
import math
import sys

import torch

import atheria_core

GRID, D_STATE = 16, 2


def main(model_path):
    print("atheria_core", atheria_core.__version__, atheria_core.get_version(),
          (atheria_core.VERSION_MAJOR, atheria_core.VERSION_MINOR, atheria_core.VERSION_PATCH))
    assert atheria_core.has_torch_support()
    assert atheria_core.add(2, 3) == 5
    atheria_core.set_num_threads(num_threads=1)
    assert repr(atheria_core.Coord3D(1, 2, 3)) == "Coord3D(1, 2, 3)"

    # --- SparseMap as the original tests used it
    m = atheria_core.SparseMap()
    m.insert(1, 2.5)
    m[7] = 1.0
    assert m.contains(1) and 7 in m and m.get(3, default_value=-1.0) == -1.0
    del m[12345]                                   # silent in the original
    assert m.remove(7) is None
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    m.insert_tensor(atheria_core.Coord3D(1, 1, 1), t)
    got = m.get_tensor(atheria_core.Coord3D(1, 1, 1))
    assert got.dtype == torch.float64 and tuple(got.shape) == (2, 3) and torch.equal(got, t)
    assert m.contains_coord(atheria_core.Coord3D(1, 1, 1)) and m.size() == 2
    assert [repr(c) for c in m.coord_keys()] == ["Coord3D(1, 1, 1)"]
    m.remove_coord(atheria_core.Coord3D(1, 1, 1))
    assert not m.contains_coord(atheria_core.Coord3D(1, 1, 1))

    # --- the wrapper's loop: engine, model, particles from a dense grid, steps, read back, visualise
    engine = atheria_core.Engine(d_state=D_STATE, device="cpu", grid_size=GRID)
    assert engine.step_native() == 0 and engine.get_step_count() == 1   # no model: counted, no error
    engine.clear()
    assert engine.get_step_count() == 0
    if not engine.load_model(model_path):
        print("load_model failed:", engine.get_last_error())
        return 1
    psi = torch.zeros(1, GRID, GRID, D_STATE, dtype=torch.complex64)
    for y in range(6, 10):
        for x in range(5, 11):
            psi[0, y, x, 0] = complex(math.cos(0.3 * x), math.sin(0.2 * y))
            psi[0, y, x, 1] = 0.5
    added = 0
    for y in range(GRID):
        for x in range(GRID):
            state = psi[0, y, x]
            if state.abs().sum().item() > 1e-6:
                engine.add_particle(atheria_core.Coord3D(x, y, 0), state)
                added += 1
    assert engine.get_matter_count() == added == 24
    initial = psi.clone()
    for _ in range(3):
        count = engine.step_native()
        assert isinstance(count, int) and count == engine.get_matter_count()
    assert engine.get_step_count() == 3

    dense = torch.zeros(1, GRID, GRID, D_STATE, dtype=torch.complex64)
    active = engine.get_active_coords()
    assert len(active) > 0 and all(hasattr(c, "x") for c in active)
    for coord in active:
        if coord.z != 0 or not (0 <= coord.x < GRID and 0 <= coord.y < GRID):
            continue
        s = engine.get_state_at(coord)
        assert s.shape == (D_STATE,) and s.numel() == D_STATE and s.dtype == torch.complex64
        if s.abs().max().item() > 1e-10:
            dense[0, coord.y, coord.x] = s
    changed = (dense[0, 6:10, 5:11] - initial[0, 6:10, 5:11]).abs().max().item()
    assert changed > 1e-3, "the state read back is still the initial grid"

    viz = engine.compute_visualization("density")
    assert isinstance(viz, torch.Tensor) and tuple(viz.shape) == (GRID, GRID)
    dens = (dense[0].abs() ** 2).sum(-1)
    matter = viz > 0
    assert torch.allclose(viz[matter], dens[matter], rtol=1e-5, atol=1e-6)
    holo = engine.compute_visualization("holographic")
    assert tuple(holo.shape) == (GRID, GRID, 3)
    bulk = engine.compute_visualization("holographic_bulk")
    assert tuple(bulk.shape) == (5, GRID, GRID)
    assert float(engine.compute_visualization("no_such_view").abs().sum()) == 0.0
    near = engine.query_radius(atheria_core.Coord3D(7, 7, 0), 1)
    assert len(near) == 9 and all(abs(c.x - 7) <= 1 and abs(c.y - 7) <= 1 for c in near)

    # --- DenseEngine: [1, C, H, W] states
    de = atheria_core.DenseEngine(GRID, D_STATE, "cpu")
    st = de.get_state()
    assert tuple(st.shape) == (1, D_STATE, GRID, GRID) and float(st.abs().sum()) == 0.0
    assert de.step() == 0
    de.set_state(dense.permute(0, 3, 1, 2))
    assert torch.equal(de.get_state(), dense.permute(0, 3, 1, 2).contiguous())
    assert de.load_model(model_path)
    assert de.step() == GRID * GRID and de.get_step_count() == 1
    assert isinstance(de.apply_tool("collapse", {"x": 3.0, "y": 3.0, "radius": 2.0, "strength": 0.5}), bool)
    bulk = de.generate_bulk_state(dens, 4)
    assert tuple(bulk.shape) == (1, 4, GRID, GRID)
    print("original client OK on backend", atheria_core.BACKEND)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Smoke test of benchmarks/benchmark_native_vs_python.py (``--quick``): it runs, writes its
JSON / Markdown / PNG, every workload succeeds with finite timings, and every exact comparison
between a native engine and its reference agrees to 1e-4.  Not a timed test: no speed assertions."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "benchmark_native_vs_python.py")


def _have(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not (_have("torch") and _have("matplotlib")), reason="benchmark needs torch and matplotlib")
def test_benchmark_quick(tmp_path):
    out = tmp_path / "bench"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + (os.pathsep + env["PYTHONPATH"]
                                                       if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--no-progress", "--out", str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    for name in ("results.json", "results.md", "time_vs_cells.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "time_vs_cells.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["quick"] is True
    assert doc["meta"]["machine"].get("threads_requested", 0) >= 1
    workloads = doc["workloads"]
    assert {w["group"] for w in workloads} == {"dense", "sparse", "overhead"}
    md = (out / "results.md").read_text()
    for w in workloads:
        assert w["status"] == "ok", f"{w['name']}: {w.get('error')}\n{w.get('traceback')}"
        assert w["name"] in md
        assert w["engines"], w["name"]
        for e in w["engines"]:
            for key in ("ms_median", "steps_per_s"):
                v = e[key]
                assert v is not None and math.isfinite(v) and v > 0, (w["name"], e["engine"], key, v)
        for c in w["comparisons"]:
            assert "error" not in c, (w["name"], c)
            d = c["max_abs_diff"]
            assert d is not None and math.isfinite(d), (w["name"], c)
            if c["exact"]:
                assert d < 1e-4, (w["name"], c["engine"], c["reference"], d)
    # every native engine of the side-by-side workloads was compared with something
    for w in workloads:
        compared = {c["engine"] for c in w["comparisons"]} | {c["reference"] for c in w["comparisons"]}
        for e in w["engines"]:
            if e["impl"] == "native":
                assert e["engine"] in compared, (w["name"], e["engine"])

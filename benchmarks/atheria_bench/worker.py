"""The worker protocol: one JSON request per stdin line, ``RESULT_TAG`` + JSON per result on
stdout; the parent side (``Worker``) runs it in a subprocess with a timeout."""
from __future__ import annotations

import datetime as _dt
import argparse
import hashlib
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Dict, List, Optional, Tuple

from .common import SCRIPT, ROOT, PY_DIR, RESULT_TAG, rss_now, rss_peak, _json_default
from .runners import Ctx
from .workloads import WORKLOADS

def build_identity() -> Dict[str, Any]:
    """Path, size, mtime and SHA-256 prefix of the compiled modules in use (the engines are rebuilt
    while being optimised: this says which build a number belongs to)."""
    import importlib.util
    out: Dict[str, Any] = {}
    for mod in ("atheria_core._core", "atheria_core._torch_shim"):  # the shim is a plain shared object
        try:
            spec = importlib.util.find_spec(mod)
            path = spec.origin if spec is not None else None
            if not path or not os.path.isfile(path):
                continue
            st = os.stat(path)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()[:16]
            out[mod.rsplit(".", 1)[1]] = {
                "path": path, "size": st.st_size, "sha256_16": digest,
                "mtime": _dt.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")}
        except Exception as exc:  # noqa: BLE001 - informational only
            out[mod.rsplit(".", 1)[1]] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _machine_info(threads: int) -> Dict[str, Any]:
    import numpy as np
    import torch
    import atheria_core as ac
    info: Dict[str, Any] = {
        "platform": platform.platform(), "machine": platform.machine(), "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__, "torch": torch.__version__,
        "atheria_core": ac.__version__, "backend": ac.BACKEND, "backend_reason": ac.BACKEND_REASON,
        "has_torch_shim": ac.has_torch_shim(), "has_openmp": ac.has_openmp(),
        "threads_requested": threads, "atheria_max_threads": ac.get_max_threads(),
        "torch_num_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "build": build_identity(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                                                     "GOMP_SPINCOUNT", "OMP_PROC_BIND", "ATHERIA_FORCE_PYTHON")},
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["mem_total_kib"] = int(line.split()[1])
                    break
    except OSError:
        pass
    return info


def worker_main(threads: int, models_dir: str, demo_root: str) -> int:
    """Reads one JSON request per line on stdin, writes RESULT_TAG + JSON per request on stdout."""
    if PY_DIR not in sys.path:
        sys.path.insert(0, PY_DIR)
    import torch
    import atheria_core as ac
    ac.set_num_threads(threads)
    torch.set_num_threads(threads)
    ctx = Ctx(models_dir, demo_root, threads)
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("cmd") == "info":
            res: Dict[str, Any] = {"info": _machine_info(threads)}
        else:
            res = run_workload(req["workload"], ctx)
        out.write(RESULT_TAG + json.dumps(res, default=_json_default) + "\n")
        out.flush()
    return 0


def run_workload(spec: Dict[str, Any], ctx: Ctx) -> Dict[str, Any]:
    import gc
    gc.collect()
    res: Dict[str, Any] = dict(spec)
    res["loadavg_start"] = os.getloadavg()
    base = rss_now()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res.update(WORKLOADS[spec["kind"]](spec["params"], ctx))
            res["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported as an error row
            res["status"] = "error"
            res["error"] = f"{type(exc).__name__}: {exc}"
            res["traceback"] = traceback.format_exc()
    res["wall_s"] = time.perf_counter() - t0
    res["loadavg_end"] = os.getloadavg()
    res["build"] = {k: v.get("sha256_16") for k, v in build_identity().items()}
    peak = rss_peak()
    res["rss"] = {"baseline_bytes": base, "peak_bytes": peak, "peak_delta_bytes": max(0, peak - base),
                  "end_bytes": rss_now()}
    msgs: List[str] = []
    for w in caught:
        m = f"{w.category.__name__}: {w.message}"
        if m not in msgs:
            msgs.append(m)
    res["warnings"] = msgs[:20]
    return res


class Worker:
    """A benchmark worker subprocess (stdin/stdout JSON lines, stderr to a temp file)."""

    def __init__(self, args: argparse.Namespace, models_dir: str) -> None:
        self.err = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, SCRIPT, "--_worker", "--threads", str(args.threads),
               "--_models", models_dir, "--demo-root", args.demo_root]
        env = dict(os.environ)
        env["PYTHONPATH"] = PY_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        if args.omp_wait_policy != "inherit":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, bufsize=1, env=env, cwd=ROOT)
        self.runs = 0
        self.buf = ""

    def request(self, req: Dict[str, Any], timeout: float) -> Tuple[Optional[Dict[str, Any]], str]:
        """(result, '') or (None, reason) when the worker died or timed out (it is then killed)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            return None, f"worker not accepting requests ({exc}); {self._died()}"
        self.runs += 1
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                if line.startswith(RESULT_TAG):
                    return json.loads(line[len(RESULT_TAG):]), ""
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return None, f"timed out after {timeout:.0f} s (worker killed)"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 16).decode(errors="replace")
                if not chunk:
                    return None, self._died()
                self.buf += chunk

    def _died(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        how = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
        return f"worker {how}; stderr tail:\n{self.stderr_tail()}"

    def stderr_tail(self, n: int = 3000) -> str:
        try:
            self.err.flush()
            self.err.seek(0)
            return self.err.read()[-n:]
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.err.close()



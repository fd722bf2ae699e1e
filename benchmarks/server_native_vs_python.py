#!/usr/bin/env python
"""Native vs Python engine through a running ``atheria-serve`` (its own FPS and ms/step).

For each experiment and engine (alternating, ``--repeats`` times) it loads the experiment,
plays for ``--seconds``, reads ``/api/status`` and pauses.  ``fps`` is steps per second with
every overhead of the server included; ``ms_per_step`` is the engine's step call alone.

    atheria-serve --root output --torch-threads 1 --max-fps 10 &
    python benchmarks/server_native_vs_python.py --url http://127.0.0.1:8765 DEMO_LOCAL_CONV DEMO_UNET
"""
from __future__ import annotations

import argparse
import json
import time
import urllib.request


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url + "/api/control", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def _status(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/status", timeout=30) as r:
        return json.loads(r.read())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+")
    p.add_argument("--url", default="http://127.0.0.1:8765")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    for exp in a.experiments:
        for _ in range(a.repeats):
            for engine in ("native", "python"):
                _post(a.url, {"action": "load", "experiment": exp, "engine": engine})
                _post(a.url, {"action": "play"})
                time.sleep(a.seconds)
                s = _status(a.url)
                _post(a.url, {"action": "pause"})
                print(f"{exp:18s} {s['engine']:7s} route={s['model_route']:22s} "
                      f"fps={s['fps']:9.1f} ms/step={s['ms_per_step']:.4f}")


if __name__ == "__main__":
    main()

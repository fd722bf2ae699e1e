"""``atheria-serve`` / ``python -m atheria_core.server``: runs the live server until SIGINT or SIGTERM."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from typing import List, Optional

logger = logging.getLogger("atheria_core.server")

__all__ = ["main", "build_parser", "serve"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="atheria-serve",
                                description="Live Atheria simulation server with a browser viewer.")
    p.add_argument("--experiment", "-e", default=None, help="experiment to load at start (a name under ROOT)")
    p.add_argument("--root", default="output", help="experiments root: ROOT/experiments/NAME/config.json")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0 = any free port; default 8765)")
    p.add_argument("--engine", choices=("native", "python"), default="native",
                   help="native: the C engine when the experiment allows it (falls back with a logged reason)")
    p.add_argument("--grid-size", type=int, default=None, help="override GRID_SIZE_INFERENCE")
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    p.add_argument("--max-fps", type=float, default=30.0, help="frames per second per view at most")
    p.add_argument("--max-steps-per-s", type=float, default=0.0,
                   help="step-rate cap while playing (0 = as fast as the engine goes)")
    p.add_argument("--max-clients", type=int, default=64, help="WebSocket clients at most")
    p.add_argument("--snapshot-dir", default=None, help="where snapshots are saved (default ROOT/snapshots)")
    p.add_argument("--history-mb", type=float, default=64.0, help="memory bound of the rewind history (MiB)")
    p.add_argument("--history-every", type=int, default=10, help="history keeps the state every N steps")
    p.add_argument("--play", action="store_true", help="start playing right after loading")
    p.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    try:
        ipaddress.ip_address(a.host)
    except ValueError:
        if a.host != "localhost":
            p.error(f"--host must be an IP address or 'localhost', got {a.host!r}")
    if not 0 <= a.port <= 65535:
        p.error(f"--port must be in [0, 65535], got {a.port}")
    if a.grid_size is not None and not 4 <= a.grid_size <= 8192:
        p.error(f"--grid-size must be in [4, 8192], got {a.grid_size}")
    if not 0 < a.max_fps <= 240:
        p.error(f"--max-fps must be in (0, 240], got {a.max_fps}")
    if not 0 <= a.max_steps_per_s <= 1e6:
        p.error(f"--max-steps-per-s must be in [0, 1e6], got {a.max_steps_per_s}")
    if not 1 <= a.max_clients <= 10000:
        p.error(f"--max-clients must be in [1, 10000], got {a.max_clients}")
    if not 0.01 <= a.history_mb <= 1 << 20:
        p.error(f"--history-mb must be in [0.01, 1048576], got {a.history_mb}")
    if not 1 <= a.history_every <= 1_000_000:
        p.error(f"--history-every must be in [1, 1000000], got {a.history_every}")
    if a.torch_threads is not None and not 1 <= a.torch_threads <= 256:
        p.error(f"--torch-threads must be in [1, 256], got {a.torch_threads}")


async def serve(args: argparse.Namespace) -> int:
    """Runs the server until SIGINT/SIGTERM; returns the exit code."""
    from aiohttp import web

    from .app import create_app
    from .protocol import Command
    from .session import EngineSession

    session = EngineSession(args.root, args.experiment, engine=args.engine, max_fps=args.max_fps,
                            max_steps_per_s=args.max_steps_per_s, grid_size=args.grid_size, device=args.device,
                            snapshot_dir=args.snapshot_dir, history_bytes=int(args.history_mb * (1 << 20)),
                            history_every=args.history_every)
    app = create_app(session, max_clients=args.max_clients)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: List[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else args.port
        # requests are served meanwhile (status says "loading"); the announcement waits for the engine
        await loop.run_in_executor(None, session.ready.wait, 600.0)
        # the line tests and scripts wait for
        logger.info("serving on http://%s:%d/ (root %s)", args.host, port, args.root)
        if args.play and args.experiment is not None:
            session.submit(Command("play"))
        await stop.wait()
        logger.info("%s received: shutting down", received[0] if received else "stop")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    logger.info("server stopped")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    # other libraries' INFO chatter (torch, aiohttp) stays out; atheria_core logs at --log-level
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("atheria_core").setLevel(getattr(logging, args.log_level))
    from .session import list_experiments

    # checked before torch is imported, so a typo fails fast
    if args.experiment is not None and args.experiment not in list_experiments(args.root):
        logger.error("experiment %r not found under %s/experiments (available: %s)", args.experiment,
                     args.root, ", ".join(list_experiments(args.root)) or "none")
        return 2
    try:
        if args.torch_threads is not None:
            import torch
            torch.set_num_threads(args.torch_threads)
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            logger.error("the server needs aiohttp: pip install 'atheria_core[server]'")
            return 2
        return asyncio.run(serve(args))
    except OSError as exc:
        logger.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    except KeyboardInterrupt:
        # SIGINT before the event loop installed its handler (e.g. while torch imports)
        logger.info("interrupted while starting")
        return 130


if __name__ == "__main__":
    sys.exit(main())

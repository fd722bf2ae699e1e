"""Live simulation server and browser viewer (``atheria-serve``, docs/server.md).

Needs the optional extra ``server`` (aiohttp).  Modules:

* :mod:`.protocol` — binary frame format and control-message validation (no aiohttp needed)
* :mod:`.session`  — the engine session: one worker thread that owns the engine
* :mod:`.app`      — the aiohttp application (HTTP API, WebSocket, static viewer)
* :mod:`.cli`      — the command line (``atheria-serve``)
"""
from __future__ import annotations

from .protocol import FRAME_HEADER_SIZE, ProtocolError, decode_frame, encode_frame, parse_control

__all__ = ["FRAME_HEADER_SIZE", "ProtocolError", "decode_frame", "encode_frame", "parse_control",
           "create_app", "EngineSession", "main"]


def __getattr__(name: str):
    # aiohttp is optional: import the app only when asked for
    if name == "create_app":
        from .app import create_app
        return create_app
    if name == "EngineSession":
        from .session import EngineSession
        return EngineSession
    if name == "main":
        from .cli import main
        return main
    raise AttributeError(name)

"""The aiohttp application: HTTP API, WebSocket ``/ws`` and the static viewer.

Routes:

* ``GET /``                  the viewer (``static/index.html``)
* ``GET /static/...``        its JS and CSS
* ``GET /api/experiments``   ``{"experiments": [...], "current": NAME | null}``
* ``GET /api/status``        the session status plus server counters
* ``POST /api/control``      one control message (``protocol.parse_control``), JSON reply
* ``GET /ws``                WebSocket: binary frames and JSON status to the client,
  control messages (and ``view``) from it

Each WebSocket client has one frame slot: a new frame replaces the one not yet sent
(latest frame wins), so a slow client gets fewer frames and the server never queues
them without bound.  Text messages to a client go through a bounded deque (oldest
status dropped first).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
from typing import Any, Deque, Dict, Optional

from aiohttp import WSMsgType, web

from .protocol import (MAX_MESSAGE_BYTES, WS_ONLY_ACTIONS, Command, ProtocolError, View,
                       parse_control, parse_json_message, parse_view)
from .session import EngineSession, SessionBusy

logger = logging.getLogger(__name__)

__all__ = ["create_app", "STATIC_DIR", "SESSION_KEY"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: the transport refuses (closes with 1009) anything bigger; between MAX_MESSAGE_BYTES and this
#: the message is answered with an error reply
WS_TRANSPORT_MAX = 1 << 20
STATUS_INTERVAL_S = 0.5
REPLY_TIMEOUT_S = 120.0
TEXT_QUEUE_MAX = 64


class Client:
    """One WebSocket client: its view, its frame slot and its outgoing text queue."""

    def __init__(self, cid: int, ws: web.WebSocketResponse) -> None:
        self.id = cid
        self.ws = ws
        self.view = View()
        self.frame: Optional[bytes] = None
        self.texts: Deque[str] = collections.deque(maxlen=TEXT_QUEUE_MAX)
        self.wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0
        self.analysis_seq = 0

    def offer_frame(self, frame: bytes) -> None:
        if self.frame is not None:
            self.dropped += 1
        self.frame = frame
        self.wake.set()

    def offer_text(self, obj: Dict[str, Any]) -> None:
        self.texts.append(json.dumps(obj, allow_nan=False, default=str))
        self.wake.set()


class Hub:
    """The connected clients and the counters of the server."""

    def __init__(self, max_clients: int) -> None:
        self.clients: Dict[int, Client] = {}
        self.ids = itertools.count(1)
        self.max_clients = max_clients
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.frames_sent = 0
        self.frames_dropped = 0
        self.errors_replied = 0

    def publish(self, view: View, frame: bytes) -> None:
        """Event-loop side of a rendered frame: into the slot of every client with that view."""
        for c in self.clients.values():
            if c.view == view:
                c.offer_frame(frame)

    def counters(self) -> Dict[str, int]:
        dropped = self.frames_dropped + sum(c.dropped for c in self.clients.values())
        sent = self.frames_sent + sum(c.sent for c in self.clients.values())
        per_client = [{"id": c.id, "frames_sent": c.sent, "frames_dropped": c.dropped,
                       "texts_pending": len(c.texts), "frame_pending": c.frame is not None}
                      for c in list(self.clients.values())[:100]]
        return {"clients": len(self.clients), "frames_sent": sent, "frames_dropped": dropped,
                "errors_replied": self.errors_replied, "per_client": per_client}


SESSION_KEY: "web.AppKey[EngineSession]" = web.AppKey("session", EngineSession)
HUB_KEY: "web.AppKey[Hub]" = web.AppKey("hub", Hub)
STATUS_TASK_KEY: "web.AppKey[asyncio.Task]" = web.AppKey("status_task", asyncio.Task)


def _error(msg: str, mid: Any = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "error", "error": msg}
    if mid is not None:
        out["id"] = mid
    return out


def _msg_id(obj: Any) -> Any:
    mid = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(mid, bool) or not isinstance(mid, (int, str)) or (isinstance(mid, str) and len(mid) > 64):
        return None
    return mid


def _context(session: EngineSession) -> Dict[str, Any]:
    st = session.status()
    return {"experiments": session.experiments(), "grid_size": st["grid_size"],
            "viz_types": st["viz_types"], "d_state": max(1, st["d_state"])}


async def _run_command(session: EngineSession, cmd: Command) -> Dict[str, Any]:
    """Runs a validated command on the worker; the reply dict (type ok or error)."""
    try:
        fut = session.submit(cmd)
    except SessionBusy as exc:
        return _error(str(exc), cmd.id)
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(fut), REPLY_TIMEOUT_S)
    except asyncio.TimeoutError:
        return _error(f"{cmd.action}: no answer from the engine within {REPLY_TIMEOUT_S:.0f} s", cmd.id)
    except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
        return _error(f"{cmd.action}: {exc}", cmd.id)
    reply: Dict[str, Any] = {"type": "ok", "action": cmd.action, "result": result, "status": session.status()}
    if cmd.id is not None:
        reply["id"] = cmd.id
    return reply


# --------------------------------------------------------------------------- HTTP
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"))


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def api_experiments(request: web.Request) -> web.Response:
    session = request.app[SESSION_KEY]
    return web.json_response({"experiments": session.experiments(), "current": session.status()["experiment"]})


async def api_status(request: web.Request) -> web.Response:
    session = request.app[SESSION_KEY]
    st = session.status()
    st.update(request.app[HUB_KEY].counters())
    st["worker_alive"] = session.alive
    return web.json_response(st)


async def api_control(request: web.Request) -> web.Response:
    session = request.app[SESSION_KEY]
    hub = request.app[HUB_KEY]
    try:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ProtocolError(f"request body is larger than the limit of {MAX_MESSAGE_BYTES} bytes") from None
        obj = parse_json_message(body)
        cmd = parse_control(obj, **_context(session))
        if cmd.action in WS_ONLY_ACTIONS:
            raise ProtocolError(f"{cmd.action!r} sets a WebSocket client's view; send it on /ws")
    except ProtocolError as exc:
        hub.errors_replied += 1
        return web.json_response(_error(str(exc)), status=400)
    reply = await _run_command(session, cmd)
    if reply["type"] == "error":
        hub.errors_replied += 1
        return web.json_response(reply, status=409)
    return web.json_response(reply)


# --------------------------------------------------------------------------- WebSocket
async def _sender(client: Client) -> None:
    """Sends the client's texts, then its latest frame, whenever there is something."""
    ws = client.ws
    while not ws.closed:
        await client.wake.wait()
        client.wake.clear()
        while client.texts and not ws.closed:
            await ws.send_str(client.texts.popleft())
        frame, client.frame = client.frame, None
        if frame is not None and not ws.closed:
            await ws.send_bytes(frame)
            client.sent += 1


async def websocket(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION_KEY]
    hub: Hub = request.app[HUB_KEY]
    if len(hub.clients) >= hub.max_clients:
        return web.json_response(_error(f"too many clients (at most {hub.max_clients})"), status=503)
    ws = web.WebSocketResponse(max_msg_size=WS_TRANSPORT_MAX, heartbeat=30.0)
    await ws.prepare(request)
    client = Client(next(hub.ids), ws)
    hub.clients[client.id] = client
    session.set_view(client.id, client.view)
    st = session.status()
    st["experiments"] = session.experiments()
    client.analysis_seq, points = session.analysis_since(0)
    client.offer_text({"type": "hello", "status": st, "analysis": points, "frame_header_bytes": 48})
    sender = asyncio.ensure_future(_sender(client))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                reply = await _handle_text(session, client, msg.data)
            elif msg.type == WSMsgType.BINARY:
                reply = _error("binary messages are not accepted: send JSON text")
            else:  # ERROR / CLOSE
                break
            if reply.get("type") == "error":
                hub.errors_replied += 1
            client.offer_text(reply)
    finally:
        sender.cancel()
        try:
            await sender
        except (asyncio.CancelledError, ConnectionError, RuntimeError):
            pass
        hub.clients.pop(client.id, None)
        hub.frames_sent += client.sent
        hub.frames_dropped += client.dropped
        session.remove_view(client.id)
    return ws


async def _handle_text(session: EngineSession, client: Client, text: str) -> Dict[str, Any]:
    obj: Any = None
    try:
        obj = parse_json_message(text)
        if obj.get("action") == "view":
            st = session.status()
            allowed = {"action", "id", "viz", "roi", "channel"}
            extra = [k for k in obj if k not in allowed]
            if extra:
                raise ProtocolError(f"unknown key(s) for 'view': {sorted(map(str, extra))[:8]}")
            view = parse_view(obj, st["viz_types"], st["grid_size"], max(1, st["d_state"]))
            client.view = view
            session.set_view(client.id, view)
            reply = {"type": "ok", "action": "view", "view": {"viz": view.viz, "roi": view.roi,
                                                              "channel": view.channel}}
            if _msg_id(obj) is not None:
                reply["id"] = _msg_id(obj)
            return reply
        cmd = parse_control(obj, **_context(session))
    except ProtocolError as exc:
        return _error(str(exc), _msg_id(obj))
    return await _run_command(session, cmd)


async def _status_loop(app: web.Application) -> None:
    session = app[SESSION_KEY]
    hub = app[HUB_KEY]
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        if not hub.clients:
            continue
        st = session.status()
        st.update(hub.counters())
        del st["per_client"]  # /api/status has it; every client needs only its own counters
        st["experiments"] = session.experiments()
        for c in list(hub.clients.values()):
            c.analysis_seq, points = session.analysis_since(c.analysis_seq)
            c.offer_text({"type": "status", "status": st, "analysis": points,
                          "frames": {"sent": c.sent, "dropped": c.dropped}})


# --------------------------------------------------------------------------- app
def create_app(session: EngineSession, *, max_clients: int = 64) -> web.Application:
    """The application around a (not yet started) session; starting/stopping it follows the app."""
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES + 1)
    hub = Hub(max_clients)
    app[SESSION_KEY] = session
    app[HUB_KEY] = hub
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/api/experiments", api_experiments)
    app.router.add_get("/api/status", api_status)
    app.router.add_post("/api/control", api_control)
    app.router.add_get("/ws", websocket)

    async def on_startup(app: web.Application) -> None:
        hub.loop = asyncio.get_running_loop()
        loop = hub.loop

        def on_frame(view: View, frame: bytes) -> None:  # worker thread
            try:
                loop.call_soon_threadsafe(hub.publish, view, frame)
            except RuntimeError:  # loop closed during shutdown
                pass

        session.on_frame = on_frame
        session.start()
        app[STATUS_TASK_KEY] = asyncio.ensure_future(_status_loop(app))

    async def on_shutdown(app: web.Application) -> None:
        for c in list(hub.clients.values()):
            await c.ws.close(code=1001, message=b"server shutting down")

    async def on_cleanup(app: web.Application) -> None:
        app[STATUS_TASK_KEY].cancel()
        loop = asyncio.get_running_loop()
        ended = await loop.run_in_executor(None, session.stop, 15.0)
        if not ended:
            logger.error("engine worker did not stop within 15 s")

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app

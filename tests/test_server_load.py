"""A short, bounded load test of the live server on 127.0.0.1: 20 reading clients, two
clients that never read, and clients sending malformed and oversized messages, for a few
seconds.  The server must stay up and responsive, drop frames for the stuck clients
instead of queueing them, and keep its memory bounded."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import pytest

aiohttp = pytest.importorskip("aiohttp")

from atheria_core.server import protocol as P  # noqa: E402

from _serverproc import ServerProc  # noqa: E402

DURATION_S = 4.0
N_READERS = 20
GRID = 128
#: resident memory the server may gain over the run (frames are 64 KiB here; an unbounded
#: queue for the stuck clients alone would grow by ~2 x 20 fps x 64 KiB x 4 s = 10 MiB)
RSS_GROWTH_MAX_KIB = 64 * 1024


def _stuck_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


async def _reader(url: str, stop: float, counts: list, i: int) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url + "/ws") as ws:
            # small views keep the readers cheap; the stuck clients keep the whole grid
            await ws.send_str(json.dumps({"action": "view", "roi": [i, i, i + 16, i + 16]}))
            while time.monotonic() < stop:
                try:
                    msg = await ws.receive(timeout=max(0.05, stop - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.BINARY:
                    f = P.decode_frame(msg.data)
                    if f["width"] == 16:
                        counts[i] += 1
                elif msg.type != aiohttp.WSMsgType.TEXT:
                    break


async def _attacker(url: str, stop: float, tally: dict) -> None:
    bad = ["{", "null", json.dumps({"action": "explode"}), json.dumps({"action": "step", "n": 10 ** 9}),
           json.dumps({"action": "load", "experiment": "../../../etc/passwd"}),
           json.dumps({"action": "tool", "tool": "wave", "params": {"x": 1e300}}),
           json.dumps({"action": "view", "roi": [-1, 0, 4, 4]}),
           "[" * 5000 + "]" * 5000, "y" * (P.MAX_MESSAGE_BYTES + 1)]
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop:
            async with s.ws_connect(url + "/ws", max_msg_size=0) as ws:
                k = 0
                while time.monotonic() < stop and k < 200:
                    await ws.send_str(bad[k % len(bad)])
                    k += 1
                    tally["sent"] += 1
                    while True:
                        msg = await ws.receive(timeout=10)
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            m = json.loads(msg.data)
                            if m["type"] == "error":
                                tally["errors"] += 1
                                break
                            assert m["type"] != "ok", m
                        elif msg.type != aiohttp.WSMsgType.BINARY:
                            raise AssertionError(f"attacker connection ended: {msg.type}")
                # over the transport limit (1 MiB): the server closes this connection (1009)
                try:
                    await ws.send_bytes(b"z" * (2 << 20))
                    msg = await ws.receive(timeout=10)
                    while msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        msg = await ws.receive(timeout=10)
                    # 1009 (message too big), or 1006 when the server drops the socket first
                    assert ws.close_code in (1009, 1006), ws.close_code
                except ConnectionError:
                    pass  # the server closed the socket while the rest of the message was on its way
                tally["closed"] += 1
            async with s.post(url + "/api/control", data=b"{" * (P.MAX_MESSAGE_BYTES + 5)) as r:
                assert r.status == 400
                tally["http_errors"] += 1


async def _prober(url: str, stop: float, latencies: list) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop:
            t0 = time.monotonic()
            async with s.get(url + "/api/status") as r:
                assert r.status == 200
                await r.json()
            latencies.append(time.monotonic() - t0)
            await asyncio.sleep(0.2)


async def _load(url: str, port: int, srv: ServerProc) -> dict:
    stuck = [_stuck_client(port) for _ in range(2)]
    try:
        stop = time.monotonic() + DURATION_S
        counts = [0] * N_READERS
        tally = {"sent": 0, "errors": 0, "closed": 0, "http_errors": 0}
        latencies: list = []
        rss: list = []

        async def sample_rss():
            while time.monotonic() < stop:
                rss.append(srv.rss_kib())
                await asyncio.sleep(0.25)

        await asyncio.gather(*[_reader(url, stop, counts, i) for i in range(N_READERS)],
                             *[_attacker(url, stop, tally) for _ in range(2)],
                             _prober(url, stop, latencies), sample_rss())
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/api/status") as r:
                st = await r.json()
        return {"counts": counts, "tally": tally, "latencies": latencies, "rss": rss, "status": st}
    finally:
        for s in stuck:
            s.close()


def test_load_many_clients_bad_messages_and_stuck_readers(demo_root):
    srv = ServerProc(demo_root, "--experiment", "DEMO_LOCAL_CONV", "--grid-size", str(GRID), "--play", "--history-mb", "4",
                     "--max-steps-per-s", "100", "--max-fps", "20")
    try:
        rss0 = srv.rss_kib()
        res = asyncio.run(asyncio.wait_for(_load(srv.url, srv.port, srv), DURATION_S + 60))
        assert srv.proc.poll() is None, srv.log
        st = res["status"]
        assert st["worker_alive"] and st["running"] and st["step"] > 0
        assert all(c >= 3 for c in res["counts"]), res["counts"]
        t = res["tally"]
        assert t["sent"] > 20 and t["errors"] == t["sent"] and t["closed"] >= 2 and t["http_errors"] >= 2, t
        assert st["errors_replied"] >= t["errors"]
        # the stuck clients' frames were dropped (latest frame wins), not queued
        assert st["frames_dropped"] > 0, st
        # the two stuck clients are still connected: each holds at most one frame and a bounded text queue
        stuck = [c for c in st["per_client"] if c["frames_dropped"] > 0]
        assert len(stuck) >= 2, st["per_client"]
        assert all(c["texts_pending"] <= 64 for c in st["per_client"])
        assert res["latencies"] and max(res["latencies"]) < 2.0, res["latencies"]
        growth = max(res["rss"]) - rss0
        assert growth < RSS_GROWTH_MAX_KIB, (rss0, res["rss"])
        # and it still answers after the storm
        code, reply = asyncio.run(_control(srv.url, {"action": "pause"}))
        assert code == 200 and reply["type"] == "ok"
        print(f"\nload: frames per reader {min(res['counts'])}..{max(res['counts'])}, bad messages {t['sent']}, "
              f"dropped {st['frames_dropped']}, status latency max {max(res['latencies']) * 1000:.0f} ms, "
              f"RSS {rss0 // 1024} -> max {max(res['rss']) // 1024} MiB")
    finally:
        assert srv.stop() == 0, srv.log


async def _control(url, body):
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/api/control", json=body) as r:
            return r.status, await r.json()

"""The inbox's WebSocket (``GET /api/inbox/ws``): a signed-in agent's live view of the hub's events
(bot.handoff.hub, and through the fan-out every replica's), presence and heartbeats."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from urllib.parse import urlparse

from aiohttp import WSMsgType, web
from sqlalchemy import update

from .. import keys
from ..handoff.common import HandoffError
from ..staff import accounts, auth
from ..store.models import Agent
from .http import HEARTBEAT_SECONDS, INBOX_ROLES, SOCKETS, dumps, error

log = logging.getLogger(__name__)


WS_AGENT = web.ResponseKey("inbox_agent_id", int)
AGENT_SOCKETS = web.AppKey("inbox_agent_sockets", dict)  # agent id -> number of open sockets here


def origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return False
    o = urlparse(origin)
    public = request.app[keys.SETTINGS].public_url
    if public and f"{o.scheme}://{o.netloc}" == public.rstrip("/"):
        return True
    return o.netloc == request.host


async def close_agent_sockets(app: web.Application, agent_id: int) -> None:
    for ws in [w for socks in app[SOCKETS].values() for w in socks if w.get(WS_AGENT) == agent_id]:
        await ws.close(code=4401, message=b"account disabled")


async def _seen(app: web.Application, agent_id: int, online: bool) -> None:
    async with app[keys.SESSIONMAKER]() as session:
        await session.execute(update(Agent).where(Agent.id == agent_id)
                              .values(last_seen_at=datetime.now(timezone.utc) if online else None))
        await session.commit()


async def websocket(request: web.Request) -> web.StreamResponse:
    signed = await auth.signed_in(request)
    if signed is None:
        return error(401, "not signed in")
    if signed.actor.role not in INBOX_ROLES:
        return error(403, f"this needs the {' or '.join(INBOX_ROLES)} role")
    if not origin_ok(request):
        return error(403, "this origin may not open the inbox")
    if not auth.csrf_ok(request, signed, request.query.get("csrf", "")):
        return error(403, "missing or invalid CSRF token (pass ?csrf=)")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=16 * 1024)
    await ws.prepare(request)
    ws[WS_AGENT] = signed.actor.id
    app = request.app
    d = app[keys.ROUTER].desk
    app[SOCKETS].setdefault(signed.session_id, set()).add(ws)
    app[AGENT_SOCKETS][signed.actor.id] += 1
    sub = d.hub.subscribe()
    await _seen(app, signed.actor.id, True)
    d.hub.publish({"type": "agents"})

    async def pump():
        while not ws.closed:
            try:
                event = await asyncio.wait_for(sub.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                # still signed in? still here.
                if await auth.signed_in(request) is None:
                    await ws.close(code=4401, message=b"session ended")
                    return
                await _seen(app, signed.actor.id, True)
                continue
            if sub.overflowed:
                sub.overflowed = False
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                event = {"type": "resync"}
            await ws.send_str(dumps(event))

    pumping = asyncio.create_task(pump())
    try:
        await ws.send_str(dumps({"type": "hello", "agent": accounts.agent_dict(signed.agent)}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except (ValueError, RecursionError):
                continue
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "ping":
                await ws.send_str(dumps({"type": "pong"}))
            elif frame.get("type") == "typing" and isinstance(frame.get("conversation_id"), str):
                try:
                    await d.typing(frame["conversation_id"], signed.actor, bool(frame.get("on")))
                except HandoffError:
                    pass
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        pumping.cancel()
        sub.close()
        app[SOCKETS].get(signed.session_id, set()).discard(ws)
        app[AGENT_SOCKETS][signed.actor.id] -= 1
        if app[AGENT_SOCKETS][signed.actor.id] <= 0:
            del app[AGENT_SOCKETS][signed.actor.id]
            try:
                await asyncio.shield(_seen(app, signed.actor.id, False))
            except Exception:  # noqa: BLE001 - shutting down
                pass
            d.hub.publish({"type": "agents"})
    return ws


async def shutdown(app: web.Application) -> None:
    for socks in list(app[SOCKETS].values()):
        for ws in list(socks):
            await ws.close(code=1001, message=b"server shutdown")



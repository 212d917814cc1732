"""The inbox's routes.

Public (no data): GET /inbox (the page), GET /inbox/static/{file} (its script, style and UI texts),
POST /api/inbox/login. Everything else needs a signed-in agent (401), a CSRF token on POSTs (403),
and /api/inbox/admin/* the admin role (403).

  POST /api/inbox/login              {email, password} -> {agent, csrf_token} + session cookie
  POST /api/inbox/logout
  GET  /api/inbox/me                 -> {agent, csrf_token}
  GET  /api/inbox/conversations?view=queue|mine|open|resolved
  GET  /api/inbox/conversations/{id} -> summary, contact, the contact's conversations, timeline
  POST /api/inbox/conversations/{id}/claim        200, or 409 when someone else was first
  POST /api/inbox/conversations/{id}/reply        {text}   (the assignee only; 409 otherwise)
  POST /api/inbox/conversations/{id}/notes        {text}   (internal, never sent to the customer)
  POST /api/inbox/conversations/{id}/typing       {on}
  POST /api/inbox/conversations/{id}/transfer     {agent_id}
  POST /api/inbox/conversations/{id}/handback
  POST /api/inbox/conversations/{id}/resolve
  GET  /api/inbox/canned?q=...&lang=de            knowledge-base articles as answer templates
  GET  /api/inbox/agents                          active agents and who is online (for transfers)
  GET  /api/inbox/admin/agents                    every account (admin)
  POST /api/inbox/admin/agents                    {email, name, role, password, language?} (admin)
  POST /api/inbox/admin/agents/{id}/disable|enable (admin)
  GET  /api/inbox/ws?csrf=...                     WebSocket: server -> client events
       hello {agent} | conversation {conversation} | message {conversation_id, message}
       note {conversation_id, note} | delivery {...} | agents {} | resync {}
       client -> server: {"type": "typing", "conversation_id", "on"} | {"type": "ping"}
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import select, update

from .. import keys
from ..clock import aware
from ..handoff.common import ONLINE_SECONDS, HandoffError
from ..staff import accounts, auth
from ..staff.pages import page_routes, static_route
from ..store.models import Agent, Conversation
from . import transcript
from .http import INBOX_ROLES, SOCKETS, error, json_body, ok
from .ws import AGENT_SOCKETS, close_agent_sockets, shutdown, websocket

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "inbox"
STATIC_FILES = {"inbox.js": "application/javascript", "inbox_view.js": "application/javascript",
                "inbox_live.js": "application/javascript", "inbox.css": "text/css", "texts.json": "application/json"}
CANNED_TIMEOUT = aiohttp.ClientTimeout(total=10)
THROTTLE = web.AppKey("inbox_login_throttle", auth.LoginThrottle)


def desk(request: web.Request):
    return request.app[keys.ROUTER].desk


def handoff_error(exc: HandoffError) -> web.Response:
    return error(exc.status, exc.message, **exc.extra)


# --- signing in ------------------------------------------------------------------------------

async def login(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return error(400, "'email' and 'password' are required")
    email = email.strip().lower()[:320]
    remote = request.remote or "?"
    throttle = request.app[THROTTLE]
    if throttle.blocked(remote, email):
        return error(429, "too many failed sign-ins; try again in a few minutes")
    async with request.app[keys.SESSIONMAKER]() as session:
        agent = await accounts.find_by_email(session, email)
    loop = asyncio.get_running_loop()
    matches, rehash = await loop.run_in_executor(None, accounts.verify_password,
                                                 agent.password_hash if agent else None, password[:1024])
    if agent is None or not matches:
        throttle.failed(remote, email)
        return error(401, "wrong email or password")
    if not agent.active:
        return error(403, "this account is disabled")
    throttle.succeeded(remote, email)
    if rehash:
        async with request.app[keys.SESSIONMAKER]() as session:
            await session.execute(update(Agent).where(Agent.id == agent.id).values(password_hash=rehash))
            await session.commit()
    token, csrf = await auth.create_session(request.app, agent)
    resp = ok({"agent": accounts.agent_dict(agent), "csrf_token": csrf})
    auth.set_session_cookie(resp, request.app, token)
    return resp


@auth.require()
async def logout(request: web.Request) -> web.Response:
    signed = request[auth.SIGNED]
    await auth.end_session(request.app, signed.session_id)
    for ws in list(request.app[SOCKETS].get(signed.session_id, ())):
        await ws.close(code=4401, message=b"signed out")
    resp = ok({"status": "signed out"})
    auth.clear_session_cookie(resp, request.app)
    return resp


@auth.require()
async def me(request: web.Request) -> web.Response:
    signed = request[auth.SIGNED]
    return ok({"agent": accounts.agent_dict(signed.agent), "csrf_token": signed.csrf})


# --- conversations ---------------------------------------------------------------------------

@auth.require(INBOX_ROLES)
async def conversations(request: web.Request) -> web.Response:
    view = request.query.get("view", "queue")
    if view not in transcript.VIEWS:
        return error(400, f"view must be one of {', '.join(transcript.VIEWS)}")
    async with request.app[keys.SESSIONMAKER]() as session:
        rows = await transcript.list_conversations(session, desk(request), view, request[auth.SIGNED].actor.id)
    return ok({"view": view, "conversations": rows})


async def _conversation(request: web.Request, session) -> Conversation | None:
    cid = request.match_info["id"]
    return (await session.execute(select(Conversation).where(Conversation.public_id == cid))).scalar_one_or_none()


@auth.require(INBOX_ROLES)
async def conversation(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        conv = await _conversation(request, session)
        if conv is None:
            return error(404, "no such conversation")
        return ok(await transcript.conversation_detail(session, desk(request), conv))


def _action(fn):
    @auth.require(INBOX_ROLES)
    async def handler(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            return await fn(request, request.match_info["id"], request[auth.SIGNED].actor, body)
        except HandoffError as exc:
            return handoff_error(exc)

    handler.__name__ = fn.__name__
    return handler


@_action
async def claim(request, cid, actor, body):
    return ok({"conversation": await request.app[keys.ROUTER].claim(cid, actor)})


@_action
async def reply(request, cid, actor, body):
    text = body.get("text")
    if not isinstance(text, str):
        return error(400, "'text' is required")
    return ok({"message": await desk(request).reply(cid, actor, text)}, status=201)


@_action
async def note(request, cid, actor, body):
    text = body.get("text")
    if not isinstance(text, str):
        return error(400, "'text' is required")
    return ok({"note": await desk(request).note(cid, actor, text)}, status=201)


@_action
async def typing(request, cid, actor, body):
    return ok({"shown": await desk(request).typing(cid, actor, bool(body.get("on", True)))})


@_action
async def transfer(request, cid, actor, body):
    to = body.get("agent_id")
    if not isinstance(to, str) or not to:
        return error(400, "'agent_id' is required")
    return ok({"conversation": await request.app[keys.ROUTER].transfer(cid, actor, to)})


@_action
async def handback(request, cid, actor, body):
    return ok({"conversation": await request.app[keys.ROUTER].hand_back(cid, actor)})


@_action
async def resolve(request, cid, actor, body):
    return ok({"conversation": await request.app[keys.ROUTER].resolve(cid, actor)})


@auth.require(INBOX_ROLES)
async def canned(request: web.Request) -> web.Response:
    """Canned answers: the knowledge base searched through the action server's /search (which has
    the encoder and the live index loaded already; the gateway stays small and never encodes)."""
    q = request.query.get("q", "").strip()
    if not q:
        return error(400, "'q' is required")
    lang = request.query.get("lang", "")[:8]
    url = request.app[keys.SETTINGS].action_server_url + "/search"
    try:
        async with request.app[keys.HTTP].get(url, params={"q": q[:500], "lang": lang, "k": "5"},
                                              timeout=CANNED_TIMEOUT) as resp:
            data = await resp.json()
            if resp.status != 200:
                return error(503, "the knowledge base is not available", detail=data.get("error"))
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        return error(503, "the knowledge base is not available", detail=str(exc))
    public = request.app[keys.SETTINGS].public_url
    hits = [{"article_id": h.get("article_id"), "title": h.get("title"), "locale": h.get("locale"),
             "score": h.get("score"), "text": h.get("answer"), "link": (public + h["link"]) if h.get("link") else None,
             "other_language": h.get("other_language")} for h in data.get("hits") or []]
    return ok({"query": q, "language": lang or None, "answers": hits})


# --- agents ----------------------------------------------------------------------------------

async def _agents(request: web.Request, include_inactive: bool) -> list[dict]:
    since = datetime.now(timezone.utc) - timedelta(seconds=ONLINE_SECONDS)
    async with request.app[keys.SESSIONMAKER]() as session:
        rows = await accounts.list_agents(session)
    return [accounts.agent_dict(a, online=bool(a.active and a.last_seen_at and aware(a.last_seen_at) >= since))
            for a in rows if include_inactive or a.active]


@auth.require(INBOX_ROLES)
async def agents(request: web.Request) -> web.Response:
    return ok({"agents": await _agents(request, False)})


@auth.require(role="admin")
async def admin_agents(request: web.Request) -> web.Response:
    return ok({"agents": await _agents(request, True)})


@auth.require(role="admin")
async def admin_add_agent(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        password = accounts.check_password(body.get("password"))
        hashed = await asyncio.get_running_loop().run_in_executor(None, accounts.hash_password, password)
        async with request.app[keys.SESSIONMAKER]() as session:
            agent = await accounts.create_agent(session, body.get("email"), body.get("name"),
                                                body.get("role", "agent"), hashed, body.get("language", "en"))
    except accounts.AccountError as exc:
        return error(exc.status, str(exc))
    request.app[keys.ROUTER].desk.hub.publish({"type": "agents"})
    return ok({"agent": accounts.agent_dict(agent)}, status=201)


def _set_active(active: bool):
    @auth.require(role="admin")
    async def handler(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, web.Response):
            return body
        signed = request[auth.SIGNED]
        async with request.app[keys.SESSIONMAKER]() as session:
            agent = (await session.execute(select(Agent).where(Agent.public_id == request.match_info["agent_id"]))
                     ).scalar_one_or_none()
            if agent is None:
                return error(404, "no such agent")
            if agent.id == signed.actor.id and not active:
                return error(409, "you cannot disable your own account")
            await accounts.set_active(session, agent, active)
            out = accounts.agent_dict(agent)
        if not active:
            await close_agent_sockets(request.app, agent.id)
        request.app[keys.ROUTER].desk.hub.publish({"type": "agents"})
        return ok({"agent": out})

    handler.__name__ = "enable_agent" if active else "disable_agent"
    return handler


def setup(app: web.Application) -> None:
    app[SOCKETS] = {}
    app[AGENT_SOCKETS] = defaultdict(int)
    app[THROTTLE] = auth.LoginThrottle()
    app.on_shutdown.append(shutdown)
    app.router.add_routes(routes())


PUBLIC_ROUTES = {("GET", "/inbox"), ("GET", "/inbox/static/{name}"), ("GET", "/staff/static/{name}"),
                 ("POST", "/api/inbox/login")}


def routes() -> list[web.RouteDef]:
    c = "/api/inbox/conversations/{id}"
    return [
        *page_routes("/inbox", WEB_DIR, STATIC_FILES),
        static_route("/staff/static", WEB_DIR.parent / "staff", {"staff.js": "application/javascript"}),
        web.post("/api/inbox/login", login),
        web.post("/api/inbox/logout", logout),
        web.get("/api/inbox/me", me),
        web.get("/api/inbox/conversations", conversations),
        web.get(c, conversation),
        web.post(c + "/claim", claim),
        web.post(c + "/reply", reply),
        web.post(c + "/notes", note),
        web.post(c + "/typing", typing),
        web.post(c + "/transfer", transfer),
        web.post(c + "/handback", handback),
        web.post(c + "/resolve", resolve),
        web.get("/api/inbox/canned", canned),
        web.get("/api/inbox/agents", agents),
        web.get("/api/inbox/admin/agents", admin_agents),
        web.post("/api/inbox/admin/agents", admin_add_agent),
        web.post("/api/inbox/admin/agents/{agent_id}/disable", _set_active(False)),
        web.post("/api/inbox/admin/agents/{agent_id}/enable", _set_active(True)),
        web.get("/api/inbox/ws", websocket),
    ]

"""Signing in to the inbox: session cookies and CSRF protection.

- The session cookie ``inbox_session`` holds a random token (the database keeps only its SHA-256):
  HttpOnly, SameSite=Lax, Secure when PUBLIC_URL is https, Path=/. A session ends after
  INBOX_SESSION_HOURS without use, after SESSION_MAX_DAYS in any case, at logout, and when the
  agent is disabled.
- CSRF: each session has its own random token, given to the page at sign-in and by GET
  /api/inbox/me; every state-changing request (POST) must send it in the ``X-CSRF-Token`` header
  and have a JSON body (a cross-site form can do neither). The WebSocket checks the Origin and
  takes the token as ``?csrf=``.
- Errors: 401 not signed in (or the session ended), 403 bad or missing CSRF token / wrong role /
  disabled account, 429 too many failed sign-ins.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from aiohttp import web
from sqlalchemy import delete, select

from .. import keys
from ..clock import aware
from .actor import Actor
from ..store.models import Agent, AgentSession

COOKIE = "inbox_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_DAYS = 7
TOUCH_SECONDS = 60  # last_used_at is written at most this often
LOGIN_FAILURES = 10  # failed sign-ins per (address, email) ...
LOGIN_WINDOW_SECONDS = 900  # ... within this window, then 429
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@dataclass
class Signed:
    """The signed-in agent of a request."""
    actor: Actor
    agent: Agent
    session_id: int
    csrf: str


SIGNED = web.RequestKey("inbox_signed", Signed)


class LoginThrottle:
    def __init__(self):
        self._failures: dict[tuple[str, str], deque] = defaultdict(deque)

    def _recent(self, key) -> deque:
        q = self._failures[key]
        cutoff = time.monotonic() - LOGIN_WINDOW_SECONDS
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, remote: str, email: str) -> bool:
        return len(self._recent((remote, email))) >= LOGIN_FAILURES

    def failed(self, remote: str, email: str) -> None:
        self._recent((remote, email)).append(time.monotonic())
        if len(self._failures) > 10000:  # bounded memory under a spray of addresses
            self._failures.clear()

    def succeeded(self, remote: str, email: str) -> None:
        self._failures.pop((remote, email), None)


def secure_cookies(app: web.Application) -> bool:
    return app[keys.SETTINGS].public_url.startswith("https://")


def set_session_cookie(response: web.StreamResponse, app: web.Application, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=secure_cookies(app), path="/",
                        max_age=SESSION_MAX_DAYS * 86400)


def clear_session_cookie(response: web.StreamResponse, app: web.Application) -> None:
    response.del_cookie(COOKIE, path="/")
    # del_cookie does not repeat the attributes; browsers match on name and path


async def create_session(app: web.Application, agent: Agent) -> tuple[str, str]:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    async with app[keys.SESSIONMAKER]() as session:
        session.add(AgentSession(token_hash=token_hash(token), agent_id=agent.id, csrf_token=csrf, created_at=now,
                                 last_used_at=now, expires_at=now + timedelta(days=SESSION_MAX_DAYS)))
        await session.commit()
    return token, csrf


async def end_session(app: web.Application, session_id: int) -> None:
    async with app[keys.SESSIONMAKER]() as session:
        await session.execute(delete(AgentSession).where(AgentSession.id == session_id))
        await session.commit()


async def signed_in(request: web.Request) -> Signed | None:
    """The agent whose valid session cookie came with the request, or None."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    app = request.app
    idle = timedelta(hours=app[keys.SETTINGS].inbox_session_hours)
    now = utcnow()
    async with app[keys.SESSIONMAKER]() as session:
        row = (await session.execute(
            select(AgentSession, Agent).join(Agent, Agent.id == AgentSession.agent_id)
            .where(AgentSession.token_hash == token_hash(token))
        )).first()
        if row is None:
            return None
        s, agent = row
        if not agent.active or aware(s.expires_at) < now or aware(s.last_used_at) + idle < now:
            await session.delete(s)
            await session.commit()
            return None
        if (now - aware(s.last_used_at)).total_seconds() > TOUCH_SECONDS:
            s.last_used_at = now
            await session.commit()
        return Signed(Actor.of(agent), agent, s.id, s.csrf_token)


def csrf_ok(request: web.Request, signed: Signed, supplied: str | None = None) -> bool:
    value = supplied if supplied is not None else request.headers.get(CSRF_HEADER, "")
    return bool(value) and hmac.compare_digest(value.encode(), signed.csrf.encode())


def require(role: str | tuple[str, ...] | None = None):
    """Route decorator: 401 when not signed in, 403 on a bad CSRF token (state-changing requests)
    or the wrong role (``role``: one role or a tuple of allowed ones). The handler gets ``request[SIGNED]``."""
    roles = (role,) if isinstance(role, str) else role

    def wrap(handler):
        @functools.wraps(handler)
        async def inner(request: web.Request):
            signed = await signed_in(request)
            if signed is None:
                return error(401, "not signed in")
            if request.method not in SAFE_METHODS and not csrf_ok(request, signed):
                return error(403, f"missing or invalid CSRF token (send the {CSRF_HEADER} header)")
            if roles is not None and signed.actor.role not in roles:
                return error(403, f"this needs the {' or '.join(roles)} role")
            request[SIGNED] = signed
            return await handler(request)

        inner.requires_auth = True
        return inner

    return wrap

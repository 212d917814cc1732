"""The website chat widget: one script tag on any page, real time over a WebSocket.

Routes
  GET /widget.js              the widget (plain JavaScript, Shadow DOM; its UI texts come from bot/i18n.py)
  GET /                       a demo help-centre page that embeds it (``?lang=de`` for the German page)
  GET /webhooks/webchat/      liveness of the channel
  GET /webhooks/webchat/ws    the WebSocket (the Origin must be allowed by WIDGET_ALLOWED_ORIGINS)

Protocol (JSON text frames; README.md "Embedding the website widget" documents every field)
  client -> server   hello {visitor, language, last_seen?, user_id?, user_hash?}   (first frame)
                     message {id, text, title?}   ping
  server -> client   ready {visitor, identity, language, max_chars}   history {messages, resume}
                     ack {id, message_id, duplicate}   message {id, role, text, buttons?, client_id?, agent?, at}
                     typing {on, by?}   error {code, message, id?}   pong

A visitor is a random token from the browser's localStorage: the contact's ``source_id`` on channel
"webchat". A site may pass a signed user id (``user_hash`` = hex HMAC-SHA256 of the user id with
WIDGET_IDENTITY_SECRET); a verified id links the token to that user's contact (identity channel
"webchat-user"), so the conversation follows the user to other browsers. An id that cannot be
verified is refused with an ``identity_refused`` error frame and the session goes on as an
anonymous visitor; a token that belongs to a verified user is never used without the signature
(the server hands out a new token instead), so signing out cannot leak the user's conversation.

Delivery: every message lives in the database first; each socket has a cursor (the last message
it was sent) and is brought up to date from the database whenever the visitor's conversation
changes (the customer's own message, the bot's replies, ``deliver`` from elsewhere). All open
sockets of a visitor (tabs, and for a verified user other browsers) share an in-process hub; with
none open, messages wait in the database and go out when the widget reconnects (it sends the id of
the last message it saw). Client message ids make sends idempotent: they become the router's
``platform_message_id`` (``<visitor>:<id>``), so a resend after a reconnect is stored once.

Inbound messages are stored with ``delivery_status = "received"`` and set to "processed" once
answered; messages a stop or crash left unanswered are answered at the next start.

Code: this module has the routes, the socket's lifecycle and the hello/message frames; the frames,
the signed identity and one socket's rate limit are in webchat_frames.py; answering and delivery in
webchat_delivery.py; the widget's script as served (widget.js with its parts) in webchat_assets.py.
"""
from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import re
import secrets
import time
from collections import defaultdict

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy.exc import IntegrityError

from .. import keys
from ..i18n import LANGUAGES
from ..messages import InboundMessage, RouteResult
from ..store import repository as repo
from ..store.models import Contact, Message
from ..tasks import KeyedLocks, SpawnsTasks
from .base import Channel
from .webchat_assets import STATIC_DIR, style_hash, widget_script
from .webchat_delivery import WebchatDelivery
from .webchat_frames import (NAME, RATE_PER_SECOND, SYNC_PAGE, Conn, error_frame, identity_problem,
                             message_frame, ui_language)

log = logging.getLogger(__name__)

USER_CHANNEL = "webchat-user"  # identity channel of site-verified user ids
WS_PATH = "/webhooks/webchat/ws"
HEALTH_PATH = "/webhooks/webchat/"
WEB_DIR = STATIC_DIR.parent

MAX_FRAME_BYTES = 64 * 1024  # (at least) larger frames close the socket (1009); texts: MAX_MESSAGE_CHARS
MAX_TITLE_CHARS = 200
HELLO_TIMEOUT_SECONDS = 15.0
HEARTBEAT_SECONDS = 30.0
MAX_REFUSED_FRAMES = 50  # a socket that keeps flooding past the limit is closed (1008)
HISTORY_LIMIT = 100  # messages sent to a widget that has none yet
MAX_CONCURRENT_ANSWERS = 32
STOP_TIMEOUT_SECONDS = 8.0

VISITOR_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class WebchatChannel(WebchatDelivery, SpawnsTasks, Channel):
    _task_label = "webchat"
    name = NAME

    def __init__(self, app: web.Application):
        super().__init__(app)
        self.settings = app[keys.SETTINGS]
        self._by_visitor: dict[str, set[Conn]] = defaultdict(set)
        self._by_contact: dict[int, set[Conn]] = defaultdict(set)
        self._conns: set[Conn] = set()
        self._busy: dict[int, int] = defaultdict(int)  # contact -> messages being answered
        self._locks = KeyedLocks()
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_ANSWERS)
        self._tasks: set[asyncio.Task] = set()
        self._inflight: set[str] = set()
        self._again: set[str] = set()  # taken up again while in flight: looked at once more afterwards
        self._stopping = False
        self._widget = widget_script()
        self._widget_etag = '"' + hashlib.sha256(self._widget).hexdigest()[:24] + '"'
        self._demo_template = (STATIC_DIR / "demo.html").read_text(encoding="utf-8")
        self._demo_style_hash = style_hash(self._demo_template)
        self._demo_texts = json.loads((WEB_DIR / "demo_texts.json").read_text(encoding="utf-8"))
        app.on_shutdown.append(self._close_sockets)

    # lifecycle

    def routes(self) -> list[web.RouteDef]:
        return [web.get(WS_PATH, self.websocket), web.get("/widget.js", self.widget),
                web.get("/", self.demo), web.get(HEALTH_PATH, self.health)]

    async def start(self) -> None:
        self._stopping = False
        self._listen_to_other_replicas()
        self._spawn(self._recover())

    async def stop(self) -> None:
        self._stopping = True
        await self._close_sockets(self.app)
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("webchat: %d answer(s) still in progress at shutdown; they are answered at the next start",
                            len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    async def _close_sockets(self, _app) -> None:
        conns = list(self._conns)
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")
                               for c in conns), return_exceptions=True)


    @property
    def sessionmaker(self):
        return self.app[keys.SESSIONMAKER]

    # HTTP

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sockets": len(self._conns)})

    async def widget(self, request: web.Request) -> web.Response:
        headers = {"Cache-Control": "public, max-age=300, stale-while-revalidate=86400",
                   "ETag": self._widget_etag, "X-Content-Type-Options": "nosniff",
                   "Access-Control-Allow-Origin": "*", "Vary": "Accept-Encoding"}
        if self._widget_etag in [e.strip() for e in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers=headers)
        return web.Response(body=self._widget, content_type="text/javascript", charset="utf-8", headers=headers)

    def _base_url(self, request: web.Request) -> str:
        return self.settings.public_url or f"{request.scheme}://{request.host}"

    async def demo(self, request: web.Request) -> web.Response:
        lang = request.query.get("lang")
        lang = lang if lang in LANGUAGES else LANGUAGES[0]
        texts = {**self._demo_texts.get("en", {}), **self._demo_texts.get(lang, {})}
        base = self._base_url(request)
        snippet = (f'<script src="{base}/widget.js" data-title="Brewbox help" data-color="#7b4a2d"\n'
                   f'        data-position="right" data-language="{lang}" defer></script>')

        def sub(match: re.Match) -> str:
            key = match.group(1)
            if key == "lang":
                return lang
            if key == "snippet":
                return html.escape(snippet)
            if key == "langs":
                current = ' aria-current="page"'
                return "".join(
                    f'<a href="/?lang={code}" hreflang="{code}" lang="{code}"{current if code == lang else ""}>'
                    f"{html.escape(self._demo_texts.get(code, {}).get('language_name', code))}</a>"
                    for code in LANGUAGES)
            return html.escape(texts.get(key, key))

        page = re.sub(r"\{\{(\w+)\}\}", sub, self._demo_template)
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers={
            "Cache-Control": "no-cache",
            # the page's own <style> block by its hash; the widget needs no inline style
            "Content-Security-Policy": (f"default-src 'self'; script-src 'self'; style-src 'self' {self._demo_style_hash}; "
                                        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                        "frame-ancestors 'none'"),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    def origin_allowed(self, request: web.Request) -> bool:
        allowed = self.settings.widget_allowed_origins
        if "*" in allowed:
            return True
        origin = request.headers.get("Origin", "").strip().rstrip("/").lower()
        if not origin or origin == "null":
            return False
        own = self._base_url(request).rstrip("/").lower()
        return origin == own or origin in {o.lower() for o in allowed}

    # the WebSocket

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            log.info("webchat: refused a socket from origin %r", request.headers.get("Origin"))
            return web.json_response({"error": "this origin is not allowed to open the chat widget "
                                               "(see WIDGET_ALLOWED_ORIGINS)"}, status=403)
        if self._stopping:
            return web.json_response({"error": "the server is restarting"}, status=503)
        # room for the longest message even if every character is JSON-escaped (\uXXXX)
        max_frame = max(MAX_FRAME_BYTES, 6 * self.settings.max_message_chars + 4096)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=max_frame)
        await ws.prepare(request)
        conn = Conn(ws)
        self._conns.add(conn)
        try:
            await self._serve(conn)
        finally:
            self._unregister(conn)
            if not ws.closed:
                await ws.close()
        return ws

    async def _serve(self, conn: Conn) -> None:
        ws = conn.ws
        hello_deadline = time.monotonic() + HELLO_TIMEOUT_SECONDS
        while not ws.closed:
            timeout = None if conn.visitor else max(0.1, hello_deadline - time.monotonic())
            try:
                msg = await ws.receive(timeout=timeout)
            except asyncio.TimeoutError:
                await conn.send(error_frame("hello_required", "send a 'hello' frame first"))
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no hello")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if not conn.allow():
                conn.refused += 1
                if conn.refused > MAX_REFUSED_FRAMES:
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many frames")
                    return
                await conn.send(error_frame("rate_limited", f"too many frames: at most {RATE_PER_SECOND:g} per "
                                                            f"second on average; this frame was dropped",
                                            self._frame_id(msg)))
                continue
            conn.refused = 0
            if msg.type == WSMsgType.BINARY:
                await conn.send(error_frame("bad_frame", "binary frames are not supported; send JSON text"))
                continue
            if msg.type != WSMsgType.TEXT:
                continue
            await self._on_frame(conn, msg.data)

    @staticmethod
    def _frame_id(msg) -> str | None:
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            frame = json.loads(msg.data)
        except (ValueError, RecursionError):
            return None
        cid = frame.get("id") if isinstance(frame, dict) else None
        return cid if isinstance(cid, str) and CLIENT_ID_RE.fullmatch(cid) else None

    async def _on_frame(self, conn: Conn, data: str) -> None:
        try:
            frame = json.loads(data)
        except (ValueError, RecursionError) as exc:
            await conn.send(error_frame("invalid_json", f"the frame is not valid JSON: {exc}"))
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await conn.send(error_frame("bad_frame", "a frame must be a JSON object with a 'type'"))
            return
        kind = frame["type"]
        if kind == "ping":
            await conn.send({"type": "pong"})
        elif kind == "hello":
            if conn.visitor is not None:
                await conn.send(error_frame("bad_frame", "'hello' was already sent on this socket"))
            else:
                await self._hello(conn, frame)
        elif kind == "message":
            if conn.visitor is None:
                cid = frame.get("id") if isinstance(frame.get("id"), str) else None
                await conn.send(error_frame("hello_required", "send a 'hello' frame first", cid))
            else:
                await self._message(conn, frame)
        else:
            await conn.send(error_frame("unknown_type", f"unknown frame type {kind[:40]!r}; "
                                                        "expected hello, message or ping"))

    async def _hello(self, conn: Conn, frame: dict) -> None:
        visitor = frame.get("visitor")
        if not (isinstance(visitor, str) and VISITOR_RE.fullmatch(visitor)):
            visitor = secrets.token_urlsafe(24)
        language = ui_language(frame.get("language"))
        user_id = frame.get("user_id")
        verified: str | None = None
        if user_id is not None or frame.get("user_hash") is not None:
            problem = identity_problem(self.settings.widget_identity_secret, user_id, frame.get("user_hash"))
            if problem:
                log.info("webchat: refused an unverifiable identity: %s", problem)
                await conn.send(error_frame("identity_refused", f"the signed identity was refused: {problem}; "
                                                                "continuing as an anonymous visitor"))
            else:
                verified = user_id
        contact: Contact | None = None
        for attempt in range(3):
            try:
                async with self.sessionmaker() as session:
                    contact = None
                    if verified:
                        contact = await repo.link_verified_visitor(session, NAME, visitor, USER_CHANNEL, verified)
                    else:
                        ident = await repo.identity_row(session, NAME, visitor)
                        if ident is not None:
                            if await repo.contact_has_identity_on(session, ident.contact_id, USER_CHANNEL):
                                # This browser's token belongs to a signed-in user: without the
                                # signature it is a new anonymous visitor.
                                visitor = secrets.token_urlsafe(24)
                            else:
                                contact = await session.get(Contact, ident.contact_id)
                    await session.commit()
                break
            except IntegrityError:  # two tabs linked the same user at once: the other one won
                if attempt == 2:
                    raise
        conn.visitor, conn.language, conn.user_id = visitor, language, verified
        self._by_visitor[visitor].add(conn)
        if contact is not None:
            self._attach(conn, contact.id)
        await conn.send({"type": "ready", "visitor": visitor,
                         "identity": {"user_id": verified, "verified": True} if verified else None,
                         "language": language, "max_chars": self.settings.max_message_chars})
        # History: everything after the last message the widget saw, or the latest messages.
        async with conn.sync_lock:
            rows: list[Message] = []
            after = None
            if conn.contact_pk is not None:
                async with self.sessionmaker() as session:
                    last_seen = frame.get("last_seen")
                    if isinstance(last_seen, str) and 0 < len(last_seen) <= 64:
                        after = await repo.contact_message_pk(session, conn.contact_pk, NAME, last_seen)
                    rows = await repo.contact_messages(session, conn.contact_pk, NAME, after_id=after or 0,
                                                       limit=SYNC_PAGE if after else HISTORY_LIMIT)
            await conn.send({"type": "history", "resume": after is not None,
                             "messages": [message_frame(m) for m in rows]})
            conn.cursor = rows[-1].id if rows else (after or 0)
        await self._sync(conn)  # anything beyond the first page
        if conn.contact_pk is not None and self._busy.get(conn.contact_pk):
            await conn.send({"type": "typing", "on": True})

    def _attach(self, conn: Conn, contact_pk: int) -> None:
        if conn.contact_pk is not None and conn.contact_pk != contact_pk:  # merged into another contact
            peers = self._by_contact.get(conn.contact_pk)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self._by_contact[conn.contact_pk]
        conn.contact_pk = contact_pk
        self._by_contact[contact_pk].add(conn)

    def _unregister(self, conn: Conn) -> None:
        self._conns.discard(conn)
        if conn.visitor is not None:
            peers = self._by_visitor.get(conn.visitor)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self._by_visitor[conn.visitor]
        if conn.contact_pk is not None:
            peers = self._by_contact.get(conn.contact_pk)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self._by_contact[conn.contact_pk]

    async def _message(self, conn: Conn, frame: dict) -> None:
        cid, text, title = frame.get("id"), frame.get("text"), frame.get("title")
        if not isinstance(cid, str) or not CLIENT_ID_RE.fullmatch(cid):
            await conn.send(error_frame("bad_frame", "'id' is required: a client message id of 1 to 64 letters, "
                                                     "digits or _.:-"))
            return
        limit = self.settings.max_message_chars
        if not isinstance(text, str) or not text.strip():
            await conn.send(error_frame("empty_message", "'text' is required and must be a non-empty string", cid))
            return
        if len(text) > limit:
            await conn.send(error_frame("too_long", f"'text' must be at most {limit} characters", cid))
            return
        if "\x00" in text:
            await conn.send(error_frame("bad_frame", "NUL characters are not allowed", cid))
            return
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE_CHARS or "\x00" in title):
            await conn.send(error_frame("bad_frame", f"'title' must be a string of at most {MAX_TITLE_CHARS} "
                                                     "characters", cid))
            return
        meta: dict = {"client_id": cid}
        if title and title.strip():
            meta["title"] = title.strip()
        if conn.user_id:
            meta["user_id"] = conn.user_id
        inbound = InboundMessage(channel=NAME, source_id=conn.visitor, text=text.strip(),
                                 platform_message_id=f"{conn.visitor}:{cid}", language_hint=conn.language,
                                 verified_user_id=conn.user_id, metadata=meta)
        try:
            accepted = await self.app[keys.ROUTER].accept(inbound, inbound_status="received")
        except Exception:  # noqa: BLE001 - the widget keeps the message and resends it
            log.exception("webchat: could not store a message")
            await conn.send(error_frame("unavailable", "the message could not be stored; it will be resent", cid))
            return
        if isinstance(accepted, RouteResult):  # sent before (a resend after a reconnect, another tab)
            await conn.send({"type": "ack", "id": cid, "message_id": accepted.message_id, "duplicate": True})
            if conn.contact_pk is None:
                await self._attach_visitor(conn.visitor)
            await self._resume_if_stuck(accepted.message_id)
            await self._sync(conn)
            return
        contact_pk = await self._attach_visitor(conn.visitor)
        await conn.send({"type": "ack", "id": cid, "message_id": accepted.message_id, "duplicate": False})
        if contact_pk is not None:
            await self._sync_contact(contact_pk)  # every tab shows the customer's message
            self._schedule(accepted, contact_pk)

    async def _attach_visitor(self, visitor: str) -> int | None:
        """After a visitor's first message created the contact, attach all of the visitor's sockets."""
        async with self.sessionmaker() as session:
            ident = await repo.identity_row(session, NAME, visitor)
        if ident is None:
            return None
        for c in list(self._by_visitor.get(visitor, ())):
            if c.contact_pk != ident.contact_id:  # not yet attached, or its contact was merged (bot.insights.identity)
                self._attach(c, ident.contact_id)
        return ident.contact_id

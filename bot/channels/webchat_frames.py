"""The widget's WebSocket protocol pieces (bot/channels/webchat.py uses them): frames, the site's
signed identity, one open socket with its rate limit, and per-visitor locks."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import timezone

from aiohttp import web

from ..i18n import LANGUAGES, TEXTS
from ..store.models import Message

log = logging.getLogger("bot.channels.webchat")

NAME = "webchat"  # the channel (and the visitor tokens' identity channel)
SYNC_PAGE = 200  # messages per database read when a socket catches up
MAX_USER_ID_CHARS = 255
RATE_BURST = 20  # frames a socket may send at once ...
RATE_PER_SECOND = 5.0  # ... and on average
HASH_RE = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def ui_language(value: object) -> str:
    if isinstance(value, str):
        base = value.strip().lower().replace("_", "-").split("-")[0]
        if base in LANGUAGES:
            return base
    return LANGUAGES[0]


def user_hash(secret: str, user_id: str) -> str:
    """What a site computes on its server: hex HMAC-SHA256 of the user id, keyed with the secret."""
    return hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def identity_problem(secret: str, user_id: object, user_hash_: object) -> str | None:
    """Why a signed identity cannot be trusted (None: it is verified). Compared in constant time."""
    if not secret:
        return "identity verification is not configured on this server (WIDGET_IDENTITY_SECRET is empty)"
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_CHARS or _CONTROL.search(user_id):
        return f"'user_id' must be a string of 1 to {MAX_USER_ID_CHARS} characters"
    if not isinstance(user_hash_, str) or not HASH_RE.fullmatch(user_hash_):
        return "'user_hash' must be the hex HMAC-SHA256 of 'user_id' (64 hex digits)"
    if not hmac.compare_digest(user_hash(secret, user_id), user_hash_.lower()):
        return "'user_hash' does not match 'user_id'"
    return None


def error_frame(code: str, message: str, client_id: str | None = None) -> dict:
    frame = {"type": "error", "code": code, "message": message}
    if client_id is not None:
        frame["id"] = client_id
    return frame


def message_frame(m: Message) -> dict:
    meta = m.meta or {}
    role = m.sender_type if m.sender_type in ("customer", "bot", "agent", "system") else "bot"
    text = m.text
    if role == "customer" and isinstance(meta.get("title"), str) and meta["title"]:
        text = meta["title"]  # a quick reply: the customer saw (and sees) its title, not the payload
    at = m.created_at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    frame: dict = {"type": "message", "id": m.public_id, "role": role, "text": text,
                   "at": at.isoformat() if at else None}
    buttons = []
    for b in m.buttons or []:
        if isinstance(b, dict) and (b.get("payload") or b.get("title")):
            buttons.append({"title": str(b.get("title") or b.get("payload")),
                            "payload": str(b.get("payload") or b.get("title"))})
    if buttons:
        frame["buttons"] = buttons
    if role == "customer" and isinstance(meta.get("client_id"), str):
        frame["client_id"] = meta["client_id"]
    if role == "agent" and isinstance(meta.get("agent_name"), str) and meta["agent_name"].strip():
        frame["agent"] = meta["agent_name"].strip()  # the agent account's display name, nothing else of it
    return frame


def widget_texts() -> dict[str, dict[str, str]]:
    return {k: v for k, v in TEXTS.items() if k.startswith("widget_")}


class Conn:
    """One open WebSocket of a visitor."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.visitor: str | None = None
        self.contact_pk: int | None = None
        self.language = LANGUAGES[0]
        self.user_id: str | None = None
        self.cursor = 0  # id of the last message sent to this socket
        self.sync_lock = asyncio.Lock()
        self.send_lock = asyncio.Lock()
        self.tokens = float(RATE_BURST)
        self.refilled = time.monotonic()
        self.refused = 0

    async def send(self, frame: dict) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self.send_lock:
                await self.ws.send_str(json.dumps(frame, ensure_ascii=False))
            return True
        except (ConnectionError, RuntimeError) as exc:
            log.debug("webchat: send failed: %s", exc)
            return False

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(RATE_BURST), self.tokens + (now - self.refilled) * RATE_PER_SECOND)
        self.refilled = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

"""The REST channel: Rasa's REST-channel contract, in front of the router.

POST /webhooks/rest/webhook  {"sender": str, "message": str, "metadata": {...}?}
  -> 200 [{"recipient_id", "text", "buttons"?, "custom"?}]
Optional metadata keys: "message_id" (idempotency key: a retry with the same id is answered with
the first answer and stored once), "language" (a hint such as the browser's language), "title" (when
"message" is a button's payload: the button's title the customer clicked, shown to agents instead
of the payload; without it the gateway finds the title among the buttons it sent).

GET /webhooks/rest/messages?sender=...&after=<message id>&wait=<seconds>
  -> 200 {"messages": [{"id", "recipient_id", "text", "buttons"?, "sender_type", "created_at"}],
          "typing": bool, "status": "bot"|"pending"|"open"|"resolved"|null}
The REST channel cannot push, so what reaches the customer later (an agent's replies, the inbox's
notices) is polled: the messages to this sender after the given one (without ``after``: the latest
50), oldest first. ``wait`` (at most 25) long-polls: the answer comes as soon as there is something
new (a message, or the agent starting or stopping typing), or empty after that many seconds; a
typing indicator that was already on when the poll began does not end it, so a client polling in a
loop never spins. ``typing`` is true while an agent is typing.
"""
from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from sqlalchemy import select

from ..keys import ROUTER, SESSIONMAKER, SETTINGS
from ..ratelimit import LIMITER, too_many
from ..messages import AssistantUnavailable, InboundMessage
from ..store.models import Contact, ContactIdentity, Conversation, Message

NAME = "rest"
MAX_SENDER_CHARS = 255
MAX_METADATA_BYTES = 8192
MAX_TITLE_CHARS = 200


def error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def parse(body: object, max_chars: int) -> InboundMessage | web.Response:
    if not isinstance(body, dict):
        return error(400, "the body must be a JSON object with 'sender' and 'message'")
    sender, message, metadata = body.get("sender"), body.get("message"), body.get("metadata")
    if not isinstance(sender, str) or not sender.strip():
        return error(400, "'sender' is required and must be a non-empty string")
    if len(sender) > MAX_SENDER_CHARS:
        return error(400, f"'sender' must be at most {MAX_SENDER_CHARS} characters")
    if not isinstance(message, str) or not message.strip():
        return error(400, "'message' is required and must be a non-empty string")
    if len(message) > max_chars:
        return error(413, f"'message' must be at most {max_chars} characters")
    if "\x00" in message or "\x00" in sender:
        return error(400, "NUL characters are not allowed")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        return error(400, "'metadata' must be a JSON object")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        return error(413, f"'metadata' must be at most {MAX_METADATA_BYTES} bytes of JSON")
    message_id = metadata.get("message_id")
    if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 255):
        return error(400, "'metadata.message_id' must be a string of 1 to 255 characters")
    hint = metadata.get("language")
    if hint is not None and not isinstance(hint, str):
        return error(400, "'metadata.language' must be a string such as 'de' or 'de-DE'")
    title = metadata.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE_CHARS or "\x00" in title):
        return error(400, f"'metadata.title' must be a string of at most {MAX_TITLE_CHARS} characters")
    extra = {k: v for k, v in metadata.items() if k in ("page", "user_agent") and isinstance(v, str)}
    if title and title.strip():
        extra["title"] = title.strip()
    return InboundMessage(channel=NAME, source_id=sender, text=message.strip(),
                          platform_message_id=f"{sender}:{message_id}" if message_id else None,
                          language_hint=hint, metadata=extra)


async def _limited(request: web.Request, kind: str, key: str, limit: int) -> web.Response | None:
    retry = await request.app[LIMITER].hit(kind, key, limit)
    return too_many(retry, "sender" if kind == "rest-sender" else "address") if retry else None


async def webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    refused = await _limited(request, "rest-ip", request.remote or "", settings.rate_limit_ip_per_minute)
    if refused:
        return refused
    if request.content_type != "application/json":
        return error(415, "send the message as application/json")
    try:
        raw = await request.read()
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return error(400, "the body is not valid UTF-8")
    except json.JSONDecodeError as exc:
        return error(400, f"the body is not valid JSON: {exc.msg} at position {exc.pos}")
    except RecursionError:
        return error(400, "the body is not valid JSON: nested too deeply")
    parsed = parse(body, settings.max_message_chars)
    if isinstance(parsed, web.Response):
        return parsed
    refused = await _limited(request, "rest-sender", parsed.source_id, settings.rate_limit_sender_per_minute)
    if refused:
        return refused
    try:
        result = await request.app[ROUTER].handle(parsed)
    except AssistantUnavailable as exc:
        return error(503, "the assistant is temporarily unavailable; your message was stored",
                     message_id=exc.message_id)
    return web.json_response([r.to_rest(parsed.source_id) for r in result.replies],
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


POLL_LATEST = 50
POLL_PAGE = 100
MAX_WAIT_SECONDS = 25.0


def _iso(dt) -> str | None:
    from ..clock import iso

    return iso(dt)


async def _poll_once(request: web.Request, sender: str, after: str | None):
    """(contact found, messages, after id valid, current conversation)"""
    async with request.app[SESSIONMAKER]() as session:
        contact_id = (await session.execute(
            select(Contact.id).join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.channel == NAME, ContactIdentity.source_id == sender)
        )).scalar_one_or_none()
        if contact_id is None:
            return None
        base = (select(Message).join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.contact_id == contact_id, Conversation.channel == NAME))
        after_pk = 0
        if after:
            after_pk = (await session.execute(
                select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.public_id == after, Conversation.contact_id == contact_id,
                       Conversation.channel == NAME))).scalar_one_or_none()
            if after_pk is None:
                return "bad_after"
        outbound = base.where(Message.direction == "out")
        if after_pk:
            rows = list((await session.execute(outbound.where(Message.id > after_pk).order_by(Message.id)
                                               .limit(POLL_PAGE))).scalars().all())
        else:
            rows = list(reversed((await session.execute(outbound.order_by(Message.id.desc()).limit(POLL_LATEST)))
                                 .scalars().all()))
        conv = (await session.execute(
            select(Conversation).where(Conversation.contact_id == contact_id, Conversation.channel == NAME)
            .order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
    return rows, conv


async def poll(request: web.Request) -> web.Response:
    """GET /webhooks/rest/messages?sender=...&after=<message id>&wait=<seconds>"""
    refused = await _limited(request, "rest-ip", request.remote or "", request.app[SETTINGS].rate_limit_ip_per_minute)
    if refused:
        return refused
    sender = request.query.get("sender", "")
    after = request.query.get("after") or None
    if not sender.strip() or len(sender) > MAX_SENDER_CHARS:
        return error(400, f"'sender' is required (at most {MAX_SENDER_CHARS} characters)")
    try:
        wait = min(MAX_WAIT_SECONDS, max(0.0, float(request.query.get("wait") or 0)))
    except ValueError:
        return error(400, "'wait' must be a number of seconds")
    desk = request.app[ROUTER].desk
    sub = desk.hub.subscribe() if wait else None
    deadline = time.monotonic() + wait
    typing_at_start = None
    try:
        while True:
            found = await _poll_once(request, sender, after)
            if found == "bad_after":
                return error(400, "'after' is not the id of a message of this sender")
            rows, conv = found if found else ([], None)
            typing = bool(conv is not None and desk.is_typing(conv.public_id))
            if typing_at_start is None:
                typing_at_start = typing
            remaining = deadline - time.monotonic()
            if rows or typing != typing_at_start or sub is None or remaining <= 0 or (after is None and not wait):
                break
            try:  # wait for something in the hub (a message of anyone: then look again)
                while True:
                    ev = await asyncio.wait_for(sub.get(), remaining)
                    if ev.get("type") in ("message", "typing", "conversation"):
                        break
            except asyncio.TimeoutError:
                pass
    finally:
        if sub is not None:
            sub.close()
    out = []
    for m in rows:
        item = {"id": m.public_id, "recipient_id": sender, "text": m.text, "sender_type": m.sender_type,
                "created_at": _iso(m.created_at)}
        if m.buttons:
            item["buttons"] = m.buttons
        if m.custom is not None:
            item["custom"] = m.custom
        out.append(item)
    return web.json_response({"messages": out, "typing": typing, "status": conv.status if conv else None},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def routes() -> list[web.RouteDef]:
    return [web.post("/webhooks/rest/webhook", webhook), web.get("/webhooks/rest/", health),
            web.get("/webhooks/rest/messages", poll)]

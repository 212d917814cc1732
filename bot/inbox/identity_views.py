"""Linking contacts from the inbox (bot.insights.identity).

POST /api/inbox/conversations/{id}/confirm-email {"email"}  (agents, admins)
    The agent has checked the customer's address (asked for an order detail, saw it in the shop's
    system, ...): it becomes a verified identity of the contact, and a contact that has the same
    confirmed address is merged with it. -> {"contact_id", "merged": merge | null, "conversation"}
GET  /api/admin/merges                                     (admins) -> {"merges": [...]}, newest first
POST /api/admin/merges/{id}/undo                           (admins) -> {"merge"}; 404, or 409 when undone already
"""
from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from .. import keys
from ..handoff.desk import EMAIL_RE
from ..insights import identity
from ..staff import auth
from ..store.models import Contact, Conversation
from .http import INBOX_ROLES, error, json_body, ok


@auth.require(INBOX_ROLES)
async def confirm_email(request: web.Request) -> web.Response:
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    raw = body.get("email")
    email = raw.strip().lower() if isinstance(raw, str) else ""
    if not email or len(email) > 254 or not EMAIL_RE.fullmatch(email):
        return error(400, "'email' must be an email address")
    actor = request[auth.SIGNED].actor
    async with request.app[keys.SESSIONMAKER]() as session:
        conv = (await session.execute(select(Conversation).where(
            Conversation.public_id == request.match_info["id"]))).scalar_one_or_none()
        if conv is None:
            return error(404, "no such conversation")
        contact = await session.get(Contact, conv.contact_id)
        kept, row = await identity.link(session, contact, identity.EMAIL, email, reason="confirmed_email",
                                        actor=f"{actor.name} <{actor.email}>")
        if not kept.email:
            kept.email = email
        merged = identity.merge_dict(row) if row is not None else None
        await session.commit()
        summary = await request.app[keys.ROUTER].desk.summary(session, await session.get(Conversation, conv.id))
    return ok({"contact_id": kept.public_id, "merged": merged, "conversation": summary})


@auth.require("admin")
async def list_merges(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        return ok({"merges": await identity.merges(session)})


@auth.require("admin")
async def undo_merge(request: web.Request) -> web.Response:
    actor = request[auth.SIGNED].actor
    async with request.app[keys.SESSIONMAKER]() as session:
        try:
            out = await identity.undo(session, request.match_info["id"], f"{actor.name} <{actor.email}>")
        except identity.IdentityError as exc:
            return error(exc.status, str(exc))
        await session.commit()
    return ok({"merge": out})


def routes() -> list[web.RouteDef]:
    return [web.post("/api/inbox/conversations/{id}/confirm-email", confirm_email),
            web.get("/api/admin/merges", list_merges),
            web.post("/api/admin/merges/{id}/undo", undo_merge)]

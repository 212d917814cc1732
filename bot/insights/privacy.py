"""Everything about one contact, exported or deleted (GDPR articles 15 and 17).

A contact is named by its public id or by one of its identities as ``channel:source_id`` (e.g.
``whatsapp:4915112345678``, ``rest:visitor-1``).

- Export: the contact, its identities, and every conversation with its messages, structured events
  (knowledge-base answers, feedback, hand-offs) and the agents' internal notes, as one JSON document.
- Delete: the contact and everything that hangs off it in the gateway database (identities,
  conversations, messages, events, notes: foreign keys with ON DELETE CASCADE), the outgoing-webhook
  rows that mention it, and its conversation in Rasa's tracker store (the rows of its sender id, which
  is the contact's public id). Rasa's rows go first, so if anything fails the contact is still there
  and the command can be run again. The log line names only the public id and the counts.

From the command line: ``python -m bot privacy export REF [--out FILE]`` and
``python -m bot privacy delete REF --yes``; from the admin API: ``GET /api/admin/contacts/{id}/export``
and ``DELETE /api/admin/contacts/{id}`` (admin role, CSRF token).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import keys
from ..channels.whatsapp_api import NAME as WHATSAPP
from ..channels.whatsapp_batches import record_erasure, scrub_batches
from ..store.models import (Contact, ContactIdentity, ContactMerge, Conversation, ConversationEvent, ConversationNote,
                           EventStreamEntry, Message, SurveyResponse, WebhookOutbox)

log = logging.getLogger(__name__)


class NotFound(Exception):
    pass


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


async def find_contact(session: AsyncSession, ref: str) -> Contact:
    ref = (ref or "").strip()
    contact = (await session.execute(select(Contact).where(Contact.public_id == ref))).scalar_one_or_none()
    if contact is None and ":" in ref:
        channel, source = ref.split(":", 1)
        contact = (await session.execute(
            select(Contact).join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.channel == channel, ContactIdentity.source_id == source))).scalar_one_or_none()
    if contact is None:
        raise NotFound(f"no contact {ref!r} (give its id or channel:source_id)")
    return contact


async def export_contact(session: AsyncSession, contact: Contact) -> dict:
    identities = (await session.execute(select(ContactIdentity).where(ContactIdentity.contact_id == contact.id))).scalars()
    convs = (await session.execute(select(Conversation).where(Conversation.contact_id == contact.id)
                                   .order_by(Conversation.id))).scalars().all()
    out = []
    for c in convs:
        msgs = (await session.execute(select(Message).where(Message.conversation_id == c.id).order_by(Message.id))).scalars()
        events = (await session.execute(select(ConversationEvent).where(ConversationEvent.conversation_id == c.id)
                                        .order_by(ConversationEvent.id))).scalars()
        notes = (await session.execute(select(ConversationNote).where(ConversationNote.conversation_id == c.id)
                                       .order_by(ConversationNote.id))).scalars()
        survey = (await session.execute(select(SurveyResponse).where(SurveyResponse.conversation_id == c.id))).scalar()
        out.append({"id": c.public_id, "channel": c.channel, "status": c.status, "language": c.language,
                    "survey": {"csat": survey.csat, "nps": survey.nps, "comment": survey.comment,
                               "stage": survey.stage} if survey else None,
                    "created_at": _iso(c.created_at), "handoff": c.handoff,
                    "messages": [{"id": m.public_id, "direction": m.direction, "sender": m.sender_type, "text": m.text,
                                  "buttons": m.buttons, "custom": m.custom, "at": _iso(m.created_at)} for m in msgs],
                    "events": [{"type": e.type, "data": e.data, "at": _iso(e.created_at)} for e in events],
                    "notes": [{"text": n.text, "at": _iso(n.created_at)} for n in notes]})
    return {"contact": {"id": contact.public_id, "name": contact.name, "email": contact.email, "phone": contact.phone,
                        "attributes": contact.attributes, "created_at": _iso(contact.created_at)},
            "identities": [{"channel": i.channel, "source_id": i.source_id, "verified": i.verified} for i in identities],
            "conversations": out}


def delete_tracker_events(tracker_url: str, sender_ids: list[str], before: float | None = None) -> int:
    """Rasa's SQL tracker store keeps a conversation as rows of ``events`` keyed by sender_id (with a
    UNIX ``timestamp``): delete those of these senders (older than ``before`` when given). Blocking:
    call it in a thread."""
    if not sender_ids:
        return 0
    url = tracker_url.replace("postgresql://", "postgresql+psycopg2://", 1) if tracker_url.startswith("postgresql://") \
        else tracker_url
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table("events"):
                return 0
            events = sa.table("events", sa.column("sender_id"), sa.column("timestamp"))
            query = sa.delete(events).where(events.c.sender_id.in_(sender_ids))
            if before is not None:
                query = query.where(events.c.timestamp < before)
            return conn.execute(query).rowcount
    finally:
        engine.dispose()


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def delete_contact(session: AsyncSession, contact: Contact, tracker_url: str, erasure_key: str = "") -> dict:
    """``erasure_key``: the WhatsApp app secret (``erasure_key_of``); with it, what the customer sent
    before this deletion and WhatsApp delivers after it is not stored (an erasure, kept a week)."""
    public_id, pk = contact.public_id, contact.id
    # contacts merged into this one talked to Rasa under their own ids
    merged_ids = list((await session.execute(select(ContactMerge.merged_public_id).where(
        ContactMerge.kept_contact_id == pk, ContactMerge.undone_at.is_(None)))).scalars())
    # Rasa's copy first: if that fails, the contact is still here and the command can be run again.
    rasa_events = await _in_thread(delete_tracker_events, tracker_url, [public_id, *merged_ids])
    conv_ids = [c for c in (await session.execute(select(Conversation.public_id)
                                                  .where(Conversation.contact_id == pk))).scalars()]
    counts = {"conversations": len(conv_ids),
              "messages": (await session.execute(select(sa.func.count(Message.id)).join(Conversation)
                                                 .where(Conversation.contact_id == pk))).scalar_one()}
    outbox = [row.id for row in (await session.execute(select(WebhookOutbox))).scalars()
              if any(x in json.dumps(row.payload) for x in [public_id, *conv_ids])]
    if outbox:
        await session.execute(delete(WebhookOutbox).where(WebhookOutbox.id.in_(outbox)))
    for model in (ConversationNote, ConversationEvent, SurveyResponse, Message):  # whatever the FK setting
        await session.execute(delete(model).where(model.conversation_id.in_(
            select(Conversation.id).where(Conversation.contact_id == pk))))
    counts["event_stream_rows"] = (await session.execute(delete(EventStreamEntry).where(or_(
        EventStreamEntry.contact_id == public_id, EventStreamEntry.conversation_id.in_(conv_ids))))).rowcount
    await session.execute(delete(Conversation).where(Conversation.contact_id == pk))
    # merges this contact took part in hold a snapshot of the merged contact: they go too
    await session.execute(delete(ContactMerge).where(or_(ContactMerge.kept_contact_id == pk,
                                                         ContactMerge.kept_public_id == public_id,
                                                         ContactMerge.merged_public_id == public_id)))
    counts["merges"] = len(merged_ids)
    # WhatsApp updates accepted but not yet stored (bot/channels/whatsapp_batches.py) would bring them back
    wa_ids = set((await session.execute(select(ContactIdentity.source_id).where(
        ContactIdentity.contact_id == pk, ContactIdentity.channel == WHATSAPP))).scalars())
    if contact.phone:
        wa_ids.add(contact.phone.lstrip("+"))
    counts["pending_whatsapp_updates"] = await scrub_batches(session, wa_ids)
    counts["erased_whatsapp_ids"] = await record_erasure(session, erasure_key, wa_ids)
    await session.execute(delete(ContactIdentity).where(ContactIdentity.contact_id == pk))
    await session.execute(delete(Contact).where(Contact.id == pk))
    await session.commit()
    counts["webhook_rows"] = len(outbox)
    counts["rasa_events"] = rasa_events
    log.info("privacy: deleted contact %s: %s", public_id, counts)
    return {"deleted": public_id, **counts}


def erasure_key_of(settings) -> str:
    """The key of the erasures' hashes: the WhatsApp app secret (none without a WhatsApp number)."""
    return settings.whatsapp.app_secret if settings.whatsapp else ""


# --- retention -----------------------------------------------------------------------------------

RETENTION_EVERY_SECONDS = 3600


async def apply_retention(session: AsyncSession, days: int, tracker_url: str, now: datetime | None = None) -> dict:
    """Delete conversations (messages, events, notes) whose last message is older than ``days`` and
    that no person is working on (status bot or resolved), and the Rasa tracker events of the same
    age. Contacts and their identities stay (a returning customer is recognised)."""
    from datetime import timedelta, timezone

    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    old = select(Conversation.id).where(Conversation.last_message_at < cutoff,
                                        Conversation.status.in_(("bot", "resolved")))
    senders = [c for c in (await session.execute(select(Contact.public_id).where(Contact.id.in_(
        select(Conversation.contact_id).where(Conversation.id.in_(old)))))).scalars()]
    ids = [i for i in (await session.execute(old)).scalars()]
    public = [c for c in (await session.execute(select(Conversation.public_id).where(Conversation.id.in_(ids)))).scalars()]
    for model in (ConversationNote, ConversationEvent, SurveyResponse, Message):
        await session.execute(delete(model).where(model.conversation_id.in_(ids)))
    await session.execute(delete(EventStreamEntry).where(EventStreamEntry.conversation_id.in_(public)))
    await session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    await session.commit()
    rasa = await _in_thread(delete_tracker_events, tracker_url, senders, cutoff.timestamp())
    if ids:
        log.info("retention: deleted %d conversation(s) older than %d days (%d Rasa events)", len(ids), days, rasa)
    return {"conversations": len(ids), "rasa_events": rasa}


async def retention_ctx(app: web.Application):
    """A background job while the gateway runs: at start and every hour (RETENTION_DAYS > 0 only)."""
    import asyncio

    settings = app[keys.SETTINGS]
    task = None
    if settings.retention_days:
        async def loop():
            while True:
                try:
                    async with app[keys.SESSIONMAKER]() as session:
                        await apply_retention(session, settings.retention_days, settings.rasa_tracker_store_url)
                except Exception:  # noqa: BLE001 - try again at the next round
                    log.exception("retention: a round failed")
                await asyncio.sleep(RETENTION_EVERY_SECONDS)
        task = asyncio.get_running_loop().create_task(loop())
    yield
    if task is not None:
        task.cancel()


# --- admin API -----------------------------------------------------------------------------------

def _admin():
    from ..staff import auth

    return auth.require("admin")


async def _requested_contact(session: AsyncSession, request: web.Request) -> Contact:
    """The contact the URL names; 404 {"error": ...} (bot.app.json_errors) when there is none."""
    try:
        return await find_contact(session, request.match_info["id"])
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


async def api_export(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        contact = await _requested_contact(session, request)
        data = await export_contact(session, contact)
    return web.json_response(data, dumps=lambda o: json.dumps(o, ensure_ascii=False),
                             headers={"Content-Disposition": f'attachment; filename="contact-{contact.public_id}.json"',
                                      "Cache-Control": "no-store"})


async def api_delete(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        contact = await _requested_contact(session, request)
        settings = request.app[keys.SETTINGS]
        out = await delete_contact(session, contact, settings.rasa_tracker_store_url, erasure_key_of(settings))
    return web.json_response(out)


async def api_events(request: web.Request) -> web.Response:
    """The event stream (bot.events) from the table, in order: ?after=<last id seen>&limit=<1..1000>."""
    from ..store import event_stream

    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return web.json_response({"error": "after and limit must be integers"}, status=400)
    if after < 0 or not 1 <= limit <= 1000:
        return web.json_response({"error": "after must be >= 0 and limit between 1 and 1000"}, status=400)
    async with request.app[keys.SESSIONMAKER]() as session:
        rows = await event_stream.read(session, after, limit)
    return web.json_response({"events": rows, "next_after": rows[-1]["id"] if rows else after},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def api_contact_attributes(request: web.Request) -> web.Response:
    """PATCH {"renewal_date": "YYYY-MM-DD" | null}: what a shop's integration knows about the customer
    (the churn-risk score uses a renewal date within 30 days, bot.insights.churn)."""
    from datetime import date

    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict) or not body or set(body) - {"renewal_date"}:
        return web.json_response({"error": "only 'renewal_date' can be set"}, status=400)
    value = body["renewal_date"]
    if value is not None:
        try:
            value = date.fromisoformat(value).isoformat() if isinstance(value, str) else None
        except ValueError:
            value = None
        if value is None:
            return web.json_response({"error": "'renewal_date' must be a date like 2026-12-31, or null"}, status=400)
    async with request.app[keys.SESSIONMAKER]() as session:
        try:
            contact = await find_contact(session, request.match_info["id"])
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        attrs = {k: v for k, v in (contact.attributes or {}).items() if k != "renewal_date"}
        if value is not None:
            attrs["renewal_date"] = value
        contact.attributes = attrs
        await session.commit()
        return web.json_response({"contact": contact.public_id, "renewal_date": value})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/admin/events", _admin()(api_events)),
            web.patch("/api/admin/contacts/{id}", _admin()(api_contact_attributes)),
            web.get("/api/admin/contacts/{id}/export", _admin()(api_export)),
            web.delete("/api/admin/contacts/{id}", _admin()(api_delete))]


# --- command line --------------------------------------------------------------------------------

def add_cli(sub) -> None:
    p = sub.add_parser("privacy", help="export or delete everything about one contact")
    ps = p.add_subparsers(dest="privacy_cmd", required=True)
    e = ps.add_parser("export")
    e.add_argument("ref", help="contact id or channel:source_id")
    e.add_argument("--out", help="file to write (default: stdout)")
    d = ps.add_parser("delete")
    d.add_argument("ref")
    d.add_argument("--yes", action="store_true", help="really delete (required)")
    p.set_defaults(func=cmd_privacy)


def cmd_privacy(args) -> int:
    import asyncio
    import sys

    from ..settings import Settings
    from ..store.db import make_engine, sessionmaker, upgrade

    if args.privacy_cmd == "delete" and not args.yes:
        print("error: deleting is permanent: add --yes", file=sys.stderr)
        return 2
    settings = Settings.from_env()

    async def run() -> int:
        await upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with sessionmaker(engine)() as session:
                try:
                    contact = await find_contact(session, args.ref)
                except NotFound as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                if args.privacy_cmd == "export":
                    text = json.dumps(await export_contact(session, contact), ensure_ascii=False, indent=1)
                    if args.out:
                        with open(args.out, "w", encoding="utf-8") as fh:
                            fh.write(text)
                    else:
                        print(text)
                    return 0
                print(json.dumps(await delete_contact(session, contact, settings.rasa_tracker_store_url,
                                                      erasure_key_of(settings))))
                return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())

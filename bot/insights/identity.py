"""One customer, many channels: linking contacts through verified identities, logged merges, undo.

A contact's identities (``contact_identities``) are its ids on each channel (a widget visitor, a
WhatsApp user id and phone number, a REST sender) and two kinds that hold beyond one browser:

- ``webchat-user:<id>`` — a website's own user id, proved by the widget with ``user_hash`` =
  HMAC-SHA256(WIDGET_IDENTITY_SECRET, user_id); every browser of that user is the same contact
  (bot/channels/webchat.py links the browser's token at the widget's hello);
- ``email:<address>`` — an email address an agent *confirmed* in the inbox (an address the customer
  merely typed is kept on the contact, never as an identity, and links nothing).

Two contacts are merged only when they come to share a verified identity: an agent confirms an
address another contact has confirmed (a WhatsApp customer and a signed-in website user, say). The older contact is kept (the conversations, identities and survey answers of the other
move to it, empty name/email/phone are filled in); the bot then answers as that contact, so the
history and captured context follow, and the inbox shows every channel in one timeline. Each merge
is logged (``contact_merges``) with a snapshot, and an admin can undo it
(``POST /api/admin/merges/{id}/undo``): the merged contact comes back with its own id, identities and
conversations (those started after the merge stay with the kept contact), and the pair is never
merged automatically again.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..store import event_stream
from ..clock import iso, utcnow
from ..store.models import Contact, ContactIdentity, ContactMerge, Conversation, SurveyResponse

log = logging.getLogger(__name__)

EMAIL = "email"
FILLABLE = ("name", "email", "phone")


class IdentityError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _holder(session: AsyncSession, kind: str, value: str) -> ContactIdentity | None:
    return (await session.execute(select(ContactIdentity).where(ContactIdentity.channel == kind,
                                                                ContactIdentity.source_id == value))).scalar_one_or_none()


async def _undone_between(session: AsyncSession, a: Contact, b: Contact) -> bool:
    pairs = ((a.public_id, b.public_id), (b.public_id, a.public_id))
    rows = (await session.execute(select(ContactMerge.kept_public_id, ContactMerge.merged_public_id)
                                  .where(ContactMerge.undone_at.is_not(None)))).all()
    return any(tuple(r) in pairs for r in rows)


async def link(session: AsyncSession, contact: Contact, kind: str, value: str, *, reason: str,
               actor: str | None = None) -> tuple[Contact, ContactMerge | None]:
    """Give ``contact`` the verified identity ``kind:value``; when another contact has it, merge the
    two (unless an admin undid that merge). Returns the contact to go on with, and the merge if any."""
    held = await _holder(session, kind, value)
    if held is None:
        session.add(ContactIdentity(contact_id=contact.id, channel=kind, source_id=value, verified=True))
        await session.flush()
        return contact, None
    if held.contact_id == contact.id:
        return contact, None
    other = await session.get(Contact, held.contact_id)
    if await _undone_between(session, contact, other):
        log.info("identity: %s:%s is shared by two contacts an admin separated; not merging again", kind, "<redacted>")
        return contact, None
    keep, gone = (other, contact) if other.id < contact.id else (contact, other)
    row = await merge(session, keep, gone, reason=reason, identity=f"{kind}:{value}", actor=actor)
    return keep, row


async def merge(session: AsyncSession, keep: Contact, gone: Contact, *, reason: str, identity: str,
                actor: str | None) -> ContactMerge:
    identities = list((await session.execute(select(ContactIdentity.id).where(
        ContactIdentity.contact_id == gone.id))).scalars())
    conversations = list((await session.execute(select(Conversation.id).where(
        Conversation.contact_id == gone.id))).scalars())
    filled = {}
    for k in FILLABLE:
        if getattr(gone, k) and not getattr(keep, k):
            filled[k] = getattr(gone, k)
            setattr(keep, k, getattr(gone, k))
    attributes = {**(gone.attributes or {}), **(keep.attributes or {})}
    snapshot = {"contact": {"public_id": gone.public_id, "name": gone.name, "email": gone.email, "phone": gone.phone,
                            "attributes": gone.attributes or {}, "created_at": iso(gone.created_at)},
                "identities": identities, "conversations": conversations, "filled": filled,
                "kept_attributes": keep.attributes or {}}
    keep.attributes = attributes
    await session.execute(update(ContactIdentity).where(ContactIdentity.contact_id == gone.id)
                          .values(contact_id=keep.id).execution_options(synchronize_session=False))
    await session.execute(update(Conversation).where(Conversation.contact_id == gone.id)
                          .values(contact_id=keep.id).execution_options(synchronize_session=False))
    await session.execute(update(SurveyResponse).where(SurveyResponse.contact_id == gone.id)
                          .values(contact_id=keep.id).execution_options(synchronize_session=False))
    row = ContactMerge(kept_contact_id=keep.id, kept_public_id=keep.public_id, merged_public_id=gone.public_id,
                       reason=reason, identity=identity, actor=actor, snapshot=snapshot, created_at=utcnow())
    session.add(row)
    await session.delete(gone)
    await session.flush()
    event_stream.record(session, None, "contact.merged", {"kept": keep.public_id, "merged": gone.public_id,
                                                    "reason": reason, "merge_id": row.public_id},
                  contact_id=keep.public_id)
    log.info("identity: contact %s merged into %s (%s)", gone.public_id, keep.public_id, reason)
    return row


def merge_dict(m: ContactMerge) -> dict:
    kind = m.identity.split(":", 1)[0]
    return {"id": m.public_id, "kept_contact_id": m.kept_public_id, "merged_contact_id": m.merged_public_id,
            "reason": m.reason, "identity_kind": kind, "actor": m.actor, "created_at": iso(m.created_at),
            "undone_at": iso(m.undone_at), "undone_by": m.undone_by,
            "conversations_moved": len((m.snapshot or {}).get("conversations") or [])}


async def undo(session: AsyncSession, merge_id: str, actor: str) -> dict:
    m = (await session.execute(select(ContactMerge).where(ContactMerge.public_id == merge_id))).scalar_one_or_none()
    if m is None:
        raise IdentityError(404, "no such merge")
    if m.undone_at is not None:
        raise IdentityError(409, "this merge was undone already")
    keep = await session.get(Contact, m.kept_contact_id) if m.kept_contact_id else None
    if keep is None:
        raise IdentityError(409, "the kept contact was deleted since; there is nothing to separate")
    snap = m.snapshot or {}
    c = snap.get("contact") or {}
    back = Contact(public_id=c.get("public_id"), name=c.get("name"), email=c.get("email"), phone=c.get("phone"),
                   attributes=c.get("attributes") or {})
    session.add(back)
    await session.flush()
    for k, v in (snap.get("filled") or {}).items():
        if getattr(keep, k) == v:
            setattr(keep, k, None)
    keep.attributes = snap.get("kept_attributes") or {}
    if snap.get("identities"):
        await session.execute(update(ContactIdentity).where(ContactIdentity.id.in_(snap["identities"]),
                                                            ContactIdentity.contact_id == keep.id)
                              .values(contact_id=back.id).execution_options(synchronize_session=False))
    if snap.get("conversations"):
        await session.execute(update(Conversation).where(Conversation.id.in_(snap["conversations"]),
                                                         Conversation.contact_id == keep.id)
                              .values(contact_id=back.id).execution_options(synchronize_session=False))
        await session.execute(update(SurveyResponse).where(SurveyResponse.conversation_id.in_(snap["conversations"]))
                              .values(contact_id=back.id).execution_options(synchronize_session=False))
    m.undone_at, m.undone_by = utcnow(), actor
    event_stream.record(session, None, "contact.merge_undone", {"kept": keep.public_id, "merged": back.public_id,
                                                          "merge_id": m.public_id}, contact_id=keep.public_id)
    await session.flush()
    log.info("identity: merge %s undone by an admin", m.public_id)
    return merge_dict(m)


async def merges(session: AsyncSession, limit: int = 200) -> list[dict]:
    rows = (await session.execute(select(ContactMerge).order_by(ContactMerge.id.desc()).limit(limit))).scalars()
    return [merge_dict(m) for m in rows]

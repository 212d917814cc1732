"""Queries and writes of the conversation store. Every function takes an open AsyncSession and
leaves committing to the caller, so one inbound message is stored in one transaction."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import event_stream
from .models import Contact, ContactIdentity, Conversation, ConversationEvent, Message, new_public_id, utcnow


async def get_or_create_contact(session: AsyncSession, channel: str, source_id: str, *,
                                verified: bool = False, name: str | None = None) -> Contact:
    row = (await session.execute(
        select(Contact).join(ContactIdentity).where(ContactIdentity.channel == channel,
                                                    ContactIdentity.source_id == source_id)
    )).scalar_one_or_none()
    if row is not None:
        if name and not row.name:
            row.name = name
        return row
    contact = Contact(name=name, attributes={})
    session.add(contact)
    await session.flush()
    session.add(ContactIdentity(contact_id=contact.id, channel=channel, source_id=source_id, verified=verified))
    await session.flush()
    return contact


async def current_conversation(session: AsyncSession, contact: Contact, channel: str) -> Conversation:
    """The contact's open conversation on this channel, or a new one with the bot."""
    row = (await session.execute(
        select(Conversation).where(Conversation.contact_id == contact.id, Conversation.channel == channel,
                                   Conversation.status != "resolved")
        .order_by(Conversation.id.desc()).limit(1)
    )).scalar_one_or_none()
    if row is not None:
        return row
    conv = Conversation(contact_id=contact.id, channel=channel, status="bot")
    session.add(conv)
    await session.flush()
    event_stream.record(session, conv, "conversation.created", {"channel": channel}, contact_id=contact.public_id)
    return conv


async def find_message_by_platform_id(session: AsyncSession, channel: str, platform_id: str) -> Message | None:
    return (await session.execute(
        select(Message).where(Message.channel == channel, Message.platform_message_id == platform_id)
    )).scalar_one_or_none()


async def replies_to(session: AsyncSession, message: Message) -> list[Message]:
    rows = (await session.execute(
        select(Message).where(Message.conversation_id == message.conversation_id, Message.direction == "out",
                              Message.id > message.id).order_by(Message.id)
    )).scalars().all()
    return [m for m in rows if (m.meta or {}).get("in_reply_to") == message.public_id]


def add_message(session: AsyncSession, conversation: Conversation, *, direction: str, sender_type: str,
                text: str | None, buttons: list | None = None, custom: dict | None = None,
                meta: dict | None = None, platform_message_id: str | None = None) -> Message:
    msg = Message(conversation_id=conversation.id, direction=direction, sender_type=sender_type,
                  channel=conversation.channel, text=text, buttons=buttons or None, custom=custom,
                  meta=meta or None, platform_message_id=platform_message_id, public_id=new_public_id())
    session.add(msg)
    conversation.last_message_at = utcnow()
    event_stream.record(session, conversation, f"message.{direction}", {
        "message_id": msg.public_id, "sender_type": sender_type, "channel": conversation.channel, "text": text,
        "buttons": buttons or None, "custom": custom, "language": (meta or {}).get("language") or conversation.language})
    return msg


def add_event(session: AsyncSession, conversation: Conversation, type_: str, data: dict) -> ConversationEvent:
    ev = ConversationEvent(conversation_id=conversation.id, type=type_, data=data)
    session.add(ev)
    event_stream.record(session, conversation, f"event.{type_}", data)
    return ev


async def transcript(session: AsyncSession, conversation_id: int) -> list[Message]:
    return list((await session.execute(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    )).scalars().all())


# --- channels that deliver asynchronously (WhatsApp) -------------------------------------------

# Outbound delivery statuses never go backwards: a late "delivered" does not undo "read". "failed"
# outranks "sent" (a failure reported after, or before, the "sent" receipt wins) but not
# "delivered"/"read" (the platform saw the message arrive, whatever a retry reported).
DELIVERY_RANK = {None: 0, "pending": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}


def merge_delivery_status(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    return new if DELIVERY_RANK.get(new, 0) > DELIVERY_RANK.get(current, 0) else current


async def find_message_by_public_id(session: AsyncSession, public_id: str) -> Message | None:
    return (await session.execute(select(Message).where(Message.public_id == public_id))).scalar_one_or_none()


class UnknownMessage(LookupError):
    pass


async def messages_to_deliver(session: AsyncSession, conversation: Conversation, replies, message_ids,
                              sender_type: str) -> list[Message]:
    """The stored outbound rows a channel's deliver() sends: the caller's rows (``message_ids``,
    already stored, checked to be this conversation's outbound messages) or new rows for ``replies``
    (committed here, so nothing is sent that is not stored)."""
    if message_ids:
        rows = [await find_message_by_public_id(session, mid) for mid in message_ids]
        if any(r is None or r.conversation_id != conversation.id or r.direction != "out" for r in rows):
            raise UnknownMessage("a message id is not an outbound message of this conversation")
        return rows
    rows = [add_message(session, conversation, direction="out", sender_type=sender_type, text=r.text,
                        buttons=r.buttons, custom=r.custom, meta={"via": "deliver"}) for r in replies]
    await session.commit()
    return rows


async def find_outbound_by_meta_text(session: AsyncSession, channel: str, needle: str, limit: int = 200) -> Message | None:
    """Last resort for platform ids kept only in ``meta`` (parts of a message sent in several pieces)."""
    from sqlalchemy import String, cast

    return (await session.execute(
        select(Message).where(Message.channel == channel, Message.direction == "out",
                              cast(Message.meta, String).contains(needle, autoescape=True))
        .order_by(Message.id.desc()).limit(1)
    )).scalar_one_or_none()


async def recent_buttons(session: AsyncSession, contact_id: int, channel: str, limit: int = 20) -> list[list]:
    """The buttons of the latest messages sent to a contact on a channel, newest first (what a button
    click answers; its payload is looked up there)."""
    rows = (await session.execute(
        select(Message.buttons).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id, Conversation.channel == channel, Message.direction == "out")
        .order_by(Message.id.desc()).limit(limit))).scalars().all()
    return [b for b in rows if isinstance(b, list) and b]


async def contact_by_identity(session: AsyncSession, channel: str, source_id: str) -> Contact | None:
    return (await session.execute(
        select(Contact).join(ContactIdentity).where(ContactIdentity.channel == channel,
                                                    ContactIdentity.source_id == source_id)
    )).scalar_one_or_none()


async def ensure_identities(session: AsyncSession, channel: str, source_ids: list[str], *,
                            name: str | None = None) -> Contact:
    """One contact for several ids of the same person on a channel (WhatsApp's business-scoped user
    id and phone number): the contact of whichever id is known gets the others as identities."""
    ids = list(dict.fromkeys(s for s in source_ids if s))
    rows = (await session.execute(
        select(ContactIdentity).where(ContactIdentity.channel == channel, ContactIdentity.source_id.in_(ids))
    )).scalars().all()
    by_source = {r.source_id: r for r in rows}
    contact_id = next((by_source[s].contact_id for s in ids if s in by_source), None)
    if contact_id is None:
        contact = Contact(name=name, attributes={})
        session.add(contact)
        await session.flush()
    else:
        contact = await session.get(Contact, contact_id)
        if name and not contact.name:
            contact.name = name
    for s in ids:
        if s not in by_source:
            session.add(ContactIdentity(contact_id=contact.id, channel=channel, source_id=s))
    await session.flush()
    return contact


async def recent_inbound(session: AsyncSession, contact_id: int, channel: str, limit: int = 20) -> list[Message]:
    """The contact's latest customer messages on a channel, newest first (across conversations)."""
    # The contact's conversations on the channel, then each one's messages (both indexed; a message
    # has its conversation's channel). Filtering on Message.channel let SQLite walk every message of
    # the channel through the (channel, platform_message_id) index instead.
    conversations = select(Conversation.id).where(Conversation.contact_id == contact_id,
                                                  Conversation.channel == channel).scalar_subquery()
    return list((await session.execute(
        select(Message)
        .where(Message.conversation_id.in_(conversations), Message.direction == "in",
               Message.sender_type == "customer")
        .order_by(Message.id.desc()).limit(limit)
    )).scalars().all())


async def inbound_with_status(session: AsyncSession, channel: str, status: str, limit: int = 500) -> list[Message]:
    """Customer messages of a channel in a given processing state, oldest first."""
    return list((await session.execute(
        select(Message).where(Message.channel == channel, Message.direction == "in", Message.delivery_status == status)
        .order_by(Message.id).limit(limit)
    )).scalars().all())


async def update_delivery(session: AsyncSession, message_id: int, status: str | None = None, *,
                          meta: dict | None = None, platform_message_id: str | None = None,
                          force_status: bool = False) -> Message | None:
    """Record a delivery outcome on an outbound message: the status is merged (never backwards,
    unless ``force_status``), ``meta`` keys are merged in, the platform id is set once.

    Unlike the other functions this one commits: it is a compare-and-set on the current status,
    retried when another writer changed the row in between."""
    from sqlalchemy import update

    for _ in range(8):
        m = (await session.execute(select(Message).where(Message.id == message_id)
                                   .execution_options(populate_existing=True))).scalar_one_or_none()
        if m is None:
            return None
        old_status, old_pid = m.delivery_status, m.platform_message_id
        new_status = status if (force_status and status) else merge_delivery_status(old_status, status)
        new_meta = {**(m.meta or {}), **(meta or {})}
        values: dict = {"delivery_status": new_status, "meta": new_meta}
        if platform_message_id and not old_pid:
            values["platform_message_id"] = platform_message_id
        cond = [Message.id == message_id,
                Message.delivery_status.is_(None) if old_status is None else Message.delivery_status == old_status,
                Message.platform_message_id.is_(None) if old_pid is None else Message.platform_message_id == old_pid]
        result = await session.execute(update(Message).where(*cond).values(**values)
                                       .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            await session.commit()
            m.delivery_status, m.meta = new_status, new_meta
            if "platform_message_id" in values:
                m.platform_message_id = platform_message_id
            return m
        await session.rollback()
    raise RuntimeError(f"could not record the delivery status of message {message_id}: too much contention")


# --- the website widget (webchat) ---------------------------------------------------------------
# A visitor is a random token kept in the browser: ContactIdentity(channel="webchat", source_id=token).
# A site-verified user id is ContactIdentity(channel="webchat-user", source_id=user_id, verified=True)
# on the same contact; every browser token of that user points at that contact.

async def identity_row(session: AsyncSession, channel: str, source_id: str) -> ContactIdentity | None:
    return (await session.execute(
        select(ContactIdentity).where(ContactIdentity.channel == channel, ContactIdentity.source_id == source_id)
    )).scalar_one_or_none()


async def contact_has_identity_on(session: AsyncSession, contact_id: int, channel: str) -> bool:
    return (await session.execute(
        select(ContactIdentity.id).where(ContactIdentity.contact_id == contact_id, ContactIdentity.channel == channel)
        .limit(1)
    )).first() is not None


async def link_verified_visitor(session: AsyncSession, visitor_channel: str, visitor: str, user_channel: str,
                                user_id: str) -> Contact:
    """Attach a browser token to the contact of a verified user id (creating what is missing).

    - The user is known: the token now points at the user's contact (a token that pointed at another
      contact is moved; that contact keeps its conversations).
    - The user is new: an anonymous contact of this token becomes the user's contact (the chat the
      visitor started before signing in continues); a token that belonged to another verified user
      gets a new contact.
    Flushes; the caller commits (and retries on IntegrityError when two tabs race)."""
    user_ident = await identity_row(session, user_channel, user_id)
    token_ident = await identity_row(session, visitor_channel, visitor)
    if user_ident is not None:
        contact = await session.get(Contact, user_ident.contact_id)
    elif token_ident is not None and not await contact_has_identity_on(session, token_ident.contact_id, user_channel):
        contact = await session.get(Contact, token_ident.contact_id)
    else:
        contact = Contact(attributes={})
        session.add(contact)
        await session.flush()
    if user_ident is None:
        session.add(ContactIdentity(contact_id=contact.id, channel=user_channel, source_id=user_id, verified=True))
    if token_ident is None:
        session.add(ContactIdentity(contact_id=contact.id, channel=visitor_channel, source_id=visitor, verified=True))
    else:
        token_ident.contact_id = contact.id
        token_ident.verified = True
    await session.flush()
    return contact


async def contact_messages(session: AsyncSession, contact_id: int, channel: str, *, after_id: int = 0,
                           limit: int = 100) -> list[Message]:
    """A contact's messages on a channel, across its conversations, oldest first: the first ``limit``
    after ``after_id``, or (``after_id`` 0) the latest ``limit``."""
    q = (select(Message).join(Conversation, Conversation.id == Message.conversation_id)
         .where(Conversation.contact_id == contact_id, Conversation.channel == channel))
    if after_id:
        return list((await session.execute(q.where(Message.id > after_id).order_by(Message.id).limit(limit)))
                    .scalars().all())
    rows = list((await session.execute(q.order_by(Message.id.desc()).limit(limit))).scalars().all())
    rows.reverse()
    return rows


async def contact_message_pk(session: AsyncSession, contact_id: int, channel: str, public_id: str) -> int | None:
    """The row id of one of the contact's messages on a channel, by its public id (None if not theirs)."""
    return (await session.execute(
        select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.public_id == public_id, Conversation.contact_id == contact_id, Conversation.channel == channel)
    )).scalar_one_or_none()


async def inbound_in_state(session: AsyncSession, channel: str, status: str,
                           limit: int = 500) -> list[tuple[Message, Conversation, Contact]]:
    """Customer messages of a channel with a given ``delivery_status``, oldest first, with their
    conversation and contact."""
    return [tuple(r) for r in (await session.execute(
        select(Message, Conversation, Contact).join(Conversation, Conversation.id == Message.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Message.channel == channel, Message.direction == "in", Message.delivery_status == status)
        .order_by(Message.id).limit(limit)
    )).all()]


async def set_message_status(session: AsyncSession, public_id: str, status: str | None) -> None:
    from sqlalchemy import update

    await session.execute(update(Message).where(Message.public_id == public_id).values(delivery_status=status))

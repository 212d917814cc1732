"""The hand-off desk: every change of a conversation's status, owned by the router.

    bot ──(the bot's "handoff" event)──> pending ──claim──> open ──transfer──> open (another agent)
     ^                                      │                │
     └────────────── hand back ─────────────┴────────────────┤
                                                             └──resolve──> resolved
    (pending can be handed back or resolved too; a message after "resolved" opens a new
     conversation with the bot: repository.current_conversation)

While a conversation is pending or open the router never forwards its messages to Rasa: they are
stored, pushed to the inbox (``Hub``) and wait for a person. Every change is one conditional
UPDATE (``... WHERE status = 'pending'`` for a claim), so of two agents claiming at once exactly one
wins and the other gets ``Conflict`` (HTTP 409).

Priority (``priority_of``) and queue order:
    priority = 2  when the bot saw negative sentiment or the reason is "frustration"
               1  when the reason is "not_helpful" (two answers in a row did not help)
               0  otherwise
    queue order = priority (highest first), then waiting time (longest first: queued_at ascending)
"""
from __future__ import annotations

import asyncio
import logging
import re

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import aware, iso, utcnow
from ..i18n import t
from ..insights.surveys import Surveys
from ..messages import Reply
from ..staff.actor import Actor
from ..store import repository as repo
from ..store.models import Agent, Contact, Conversation, ConversationEvent, ConversationNote, Message
from ..tasks import SpawnsTasks
from . import webhooks
from .common import (BOT, OPEN, PENDING, RESOLVED, WITH_A_PERSON, Conflict, Forbidden, HandoffError, NotFound,
                     message_dict, priority_of)
from .hours import BusinessHours
from .hub import Hub
from .queue import QueueReading
from .reach import ReachesCustomers

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 4000


class Desk(QueueReading, ReachesCustomers, SpawnsTasks):
    _task_label = "hand-off desk"
    def __init__(self, sessionmaker: async_sessionmaker, *, hours: BusinessHours | None = None,
                 webhook_url: str = "", webhook_secret: str = "", surveys: Surveys | None = None, clock=utcnow):
        self.sessionmaker = sessionmaker
        self.surveys = surveys or Surveys(clock=clock)
        self.hours = hours or BusinessHours.parse("always", "UTC")
        self.hub = Hub()
        self.webhook_url = webhook_url
        self.webhooks = webhooks.WebhookSender(sessionmaker, webhook_url, webhook_secret)
        self.channels: dict = {}  # the channel registry (keys.CHANNELS), set by create_app
        self.clock = clock
        self._typing: dict[str, float] = {}  # conversation public id -> monotonic deadline (REST polling)
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def from_settings(cls, sessionmaker: async_sessionmaker, settings) -> "Desk":
        return cls(sessionmaker, hours=BusinessHours.parse(settings.business_hours, settings.business_timezone),
                   webhook_url=settings.outgoing_webhook_url, webhook_secret=settings.outgoing_webhook_secret,
                   surveys=Surveys.from_settings(settings))

    async def start(self) -> None:
        await self.webhooks.start()

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=8.0)
        await self.webhooks.stop()


    # --- reading -------------------------------------------------------------------------------

    async def summary(self, session: AsyncSession, conv: Conversation, contact: Contact | None = None,
                      assignee: Agent | None = None, with_position: bool = True) -> dict:
        contact = contact or await session.get(Contact, conv.contact_id)
        if assignee is None and conv.assignee_id:
            assignee = await session.get(Agent, conv.assignee_id)
        h = conv.handoff or {}
        queued = aware(conv.queued_at)
        out = {
            "id": conv.public_id, "status": conv.status, "channel": conv.channel, "language": conv.language,
            "priority": conv.priority or 0, "queued_at": iso(queued), "assigned_at": iso(conv.assigned_at),
            "created_at": iso(conv.created_at), "last_message_at": iso(conv.last_message_at),
            "waiting_seconds": round((self.clock() - queued).total_seconds()) if queued and conv.status == PENDING else None,
            "contact": {"id": contact.public_id, "name": contact.name, "email": contact.email, "phone": contact.phone}
            if contact else None,
            "assignee": {"id": assignee.public_id, "name": assignee.name} if assignee else None,
            "handoff": {k: h.get(k) for k in ("reason", "summary", "sentiment", "captured", "skipped", "articles",
                                              "after_hours", "awaiting_email", "language", "channel",
                                              "verified_user_id")} if h else None,
        }
        if with_position and conv.status == PENDING:
            out["position"] = await self.queue_position(session, conv)
        return out

    async def announce(self, conversation_pk: int) -> None:
        """Tell every inbox what a conversation looks like now (after a commit)."""
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conversation_pk)
            if conv is None:
                return
            summary = await self.summary(session, conv)
        self.hub.publish({"type": "conversation", "conversation": summary})
        self.webhooks.wake()

    async def _webhook_payload(self, session: AsyncSession, conv: Conversation, **extra) -> dict:
        s = await self.summary(session, conv, with_position=False)
        conversation = {k: s[k] for k in ("id", "status", "channel", "language", "priority", "queued_at",
                                          "assigned_at", "contact", "assignee")}
        return {"conversation": conversation, "handoff": s["handoff"], **extra}

    # --- the router's side: hand-off, and messages while a person has the conversation ---------

    async def hand_off(self, session: AsyncSession, conv: Conversation, event: dict, in_reply_to: str) -> list:
        """bot -> pending, in the router's transaction. Returns the replies that tell the customer
        (stored as messages answering ``in_reply_to``; the caller commits, then calls announce)."""
        if conv.status != BOT:
            return []  # already with a person (the bot asked again): nothing changes
        now = self.clock()
        prio = priority_of(event)
        await session.flush()
        res = await session.execute(
            update(Conversation).where(Conversation.id == conv.id, Conversation.status == BOT)
            .values(status=PENDING, priority=prio, queued_at=now, assignee_id=None, assigned_at=None)
            .execution_options(synchronize_session=False))
        if res.rowcount != 1:
            return []
        await session.refresh(conv)
        contact = await session.get(Contact, conv.contact_id)
        captured = {k: v for k, v in (event.get("captured") or {}).items() if isinstance(v, str) and v}
        if captured.get("name") and not contact.name:
            contact.name = captured["name"][:200]
        if captured.get("email") and not contact.email:
            contact.email = captured["email"][:320]
        lang = conv.language or event.get("language") or "en"
        online = await self.agents_online(session)
        open_now = self.hours.is_open(now)
        position = await self.queue_position(session, conv)
        estimate = await self.wait_estimate(session) if open_now and online else None
        email = captured.get("email") or contact.email
        needs_email = not email and conv.channel != "whatsapp"
        parts: list[str] = []
        if open_now and online:
            parts.append(t("handoff_queue_position", lang, position=position))
            if estimate is None:
                parts.append(t("handoff_wait_unknown", lang))
            elif estimate < 120:
                parts.append(t("handoff_wait_short", lang))
            else:
                parts.append(t("handoff_wait_estimate", lang, minutes=max(2, round(estimate / 60))))
            needs_email = False  # someone answers in this chat
        else:
            if not open_now:
                nxt = self.hours.next_open(now)
                days = t("weekdays_long", lang).split(",")
                next_text = t("handoff_next_open", lang, day=days[nxt.weekday()], time=nxt.strftime("%H:%M")) \
                    if nxt else "—"
                parts.append(t("handoff_after_hours", lang, hours=self.hours.describe(t("weekdays_short", lang).split(",")),
                               timezone=str(self.hours.tz.key), position=position, next_open=next_text))
            else:
                parts.append(t("handoff_no_agent", lang, position=position))
            if conv.channel == "whatsapp":
                parts.append(t("handoff_reach_whatsapp", lang))
            elif email:
                parts.append(t("handoff_reach_email", lang, email=email))
            else:
                parts.append(t("handoff_ask_email", lang))
        text = " ".join(parts)
        articles = await self._articles(session, conv, event.get("articles_shown") or [])
        conv.handoff = {
            "reason": event.get("reason"), "summary": event.get("summary"), "captured": captured,
            "articles_shown": list(event.get("articles_shown") or []), "articles": articles,
            "skipped": list(event.get("skipped") or []), "language": event.get("language") or conv.language,
            "channel": event.get("channel") or conv.channel, "verified_user_id": event.get("verified_user_id"),
            "sentiment": event.get("sentiment"), "queued_at": iso(now), "message_id": in_reply_to,
            "after_hours": not open_now, "agents_online": online, "position": position,
            "wait_estimate_seconds": estimate, "awaiting_email": needs_email,
        }
        repo.add_message(session, conv, direction="out", sender_type="system", text=text,
                         meta={"in_reply_to": in_reply_to, "text_key": "handoff_queued"})
        repo.add_event(session, conv, "status", {"from": BOT, "to": PENDING, "priority": prio, "position": position,
                                                 "after_hours": not open_now, "agents_online": online})
        webhooks.enqueue(session, self.webhook_url, "conversation.handed_off",
                         await self._webhook_payload(session, conv))
        return [Reply(text)]

    async def _articles(self, session: AsyncSession, conv: Conversation, groups: list) -> list[dict]:
        """Title and link of each article shown, from the conversation's kb_answer events."""
        rows = (await session.execute(
            select(ConversationEvent.data).where(ConversationEvent.conversation_id == conv.id,
                                                 ConversationEvent.type == "kb_answer")
            .order_by(ConversationEvent.id)
        )).scalars().all()
        by_group: dict[str, dict] = {}
        for d in rows:
            for a in (d or {}).get("articles") or []:
                if isinstance(a, dict) and a.get("group"):
                    by_group[a["group"]] = {k: a.get(k) for k in ("article_id", "group", "title", "link", "locale")}
        return [by_group.get(g, {"group": g, "title": g}) for g in groups if isinstance(g, str)]

    async def customer_message(self, conversation_id: str, message: Message) -> None:
        """A customer's message in a conversation a person has: to the inbox, at once."""
        self.hub.publish({"type": "message", "conversation_id": conversation_id, "message": message_dict(message)})

    async def while_waiting(self, conversation_pk: int, message_id: str, text: str) -> list:
        """A customer's message while pending: when we asked for an email address and this is one,
        keep it and say thanks. Anything else waits for the agent (no reply)."""
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conversation_pk)
            h = dict(conv.handoff or {})
            if conv.status != PENDING or not h.get("awaiting_email"):
                return []
            found = EMAIL_RE.search(text or "")
            if not found or len(found.group(0)) > 254:
                return []
            email = found.group(0).lower()
            contact = await session.get(Contact, conv.contact_id)
            if not contact.email:
                contact.email = email
            h["captured"] = {**(h.get("captured") or {}), "email": email}
            h["awaiting_email"] = False
            conv.handoff = h
            reply = t("handoff_email_saved", conv.language, email=email)
            m = repo.add_message(session, conv, direction="out", sender_type="system", text=reply,
                                 meta={"in_reply_to": message_id, "text_key": "handoff_email_saved"})
            await session.commit()
            published = message_dict(m)
        self.hub.publish({"type": "message", "conversation_id": conv.public_id, "message": published})
        await self.announce(conversation_pk)
        return [Reply(reply)]

    # --- the inbox's side: claim, reply, note, transfer, hand back, resolve ---------------------

    async def _conversation(self, session: AsyncSession, public_id: str, *, fresh: bool = False) -> Conversation:
        q = select(Conversation).where(Conversation.public_id == public_id)
        if fresh:
            q = q.execution_options(populate_existing=True)
        conv = (await session.execute(q)).scalar_one_or_none()
        if conv is None:
            raise NotFound("no such conversation")
        return conv

    async def _conflict(self, session: AsyncSession, conv: Conversation, doing: str) -> Conflict:
        holder = await session.get(Agent, conv.assignee_id) if conv.assignee_id else None
        if conv.status == OPEN and holder is not None:
            return Conflict(f"cannot {doing}: {holder.name} has this conversation", conversation_status=conv.status,
                            assignee={"id": holder.public_id, "name": holder.name})
        return Conflict(f"cannot {doing}: the conversation is {conv.status}", conversation_status=conv.status)

    def _notice(self, session: AsyncSession, conv: Conversation, key: str, **values) -> Message:
        return repo.add_message(session, conv, direction="out", sender_type="system",
                                text=t(key, conv.language, **values), meta={"text_key": key})

    async def claim(self, conversation_id: str, agent: Actor) -> dict:
        now = self.clock()
        async with self.sessionmaker() as session:
            res = await session.execute(
                update(Conversation).where(Conversation.public_id == conversation_id, Conversation.status == PENDING)
                .values(status=OPEN, assignee_id=agent.id, assigned_at=now)
                .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                await session.rollback()
                conv = await self._conversation(session, conversation_id, fresh=True)
                raise await self._conflict(session, conv, "claim")
            conv = await self._conversation(session, conversation_id, fresh=True)
            queued = aware(conv.queued_at) or now
            wait = max(0.0, (now - queued).total_seconds())
            repo.add_event(session, conv, "status", {"from": PENDING, "to": OPEN, "agent_id": agent.public_id})
            repo.add_event(session, conv, "assigned", {"agent_id": agent.public_id, "agent_name": agent.name,
                                                       "wait_seconds": round(wait, 3), "transfer": False})
            notice = self._notice(session, conv, "handoff_agent_joined", name=agent.name)
            webhooks.enqueue(session, self.webhook_url, "conversation.assigned",
                             await self._webhook_payload(session, conv, agent=agent.public(), transfer=False,
                                                         wait_seconds=round(wait, 3)))
            await session.commit()
            summary = await self.summary(session, conv)
        self._after(conv, [notice], summary)
        return summary

    async def reply(self, conversation_id: str, agent: Actor, text: str) -> dict:
        text = (text or "").strip()
        if not text:
            raise HandoffError("the reply is empty")
        if len(text) > MAX_REPLY_CHARS:
            raise HandoffError(f"the reply must be at most {MAX_REPLY_CHARS} characters")
        async with self.sessionmaker() as session:
            conv = await self._conversation(session, conversation_id, fresh=True)
            if conv.status != OPEN or conv.assignee_id != agent.id:
                raise await self._conflict(session, conv, "reply")
            m = repo.add_message(session, conv, direction="out", sender_type="agent", text=text,
                                 meta={"agent_id": agent.public_id, "agent_name": agent.name})
            await session.commit()
            out = message_dict(m)
        self._typing.pop(conversation_id, None)
        self.hub.publish({"type": "message", "conversation_id": conversation_id, "message": out})
        self._spawn(self.deliver(conv, [m]))
        return out

    async def note(self, conversation_id: str, agent: Actor, text: str) -> dict:
        text = (text or "").strip()
        if not text:
            raise HandoffError("the note is empty")
        if len(text) > MAX_NOTE_CHARS:
            raise HandoffError(f"the note must be at most {MAX_NOTE_CHARS} characters")
        async with self.sessionmaker() as session:
            conv = await self._conversation(session, conversation_id)
            n = ConversationNote(conversation_id=conv.id, agent_id=agent.id, text=text)
            session.add(n)
            await session.commit()
            out = {"id": n.public_id, "text": n.text, "created_at": iso(n.created_at),
                   "agent": {"id": agent.public_id, "name": agent.name}}
        self.hub.publish({"type": "note", "conversation_id": conversation_id, "note": out})
        return out

    def _may_act(self, conv: Conversation, agent: Actor, doing: str) -> None:
        if conv.status == OPEN and conv.assignee_id != agent.id and not agent.is_admin:
            raise Forbidden(f"only the assigned agent or an admin can {doing} this conversation")

    async def transfer(self, conversation_id: str, agent: Actor, to_agent_id: str) -> dict:
        now = self.clock()
        async with self.sessionmaker() as session:
            target = (await session.execute(select(Agent).where(Agent.public_id == to_agent_id))).scalar_one_or_none()
            if target is None or not target.active:
                raise NotFound("no such active agent")
            conv = await self._conversation(session, conversation_id, fresh=True)
            if conv.status != OPEN:
                raise await self._conflict(session, conv, "transfer")
            self._may_act(conv, agent, "transfer")
            if conv.assignee_id == target.id:
                raise Conflict(f"{target.name} has this conversation already")
            previous = conv.assignee_id
            res = await session.execute(
                update(Conversation).where(Conversation.id == conv.id, Conversation.status == OPEN,
                                           Conversation.assignee_id == previous)
                .values(assignee_id=target.id, assigned_at=now).execution_options(synchronize_session=False))
            if res.rowcount != 1:
                await session.rollback()
                conv = await self._conversation(session, conversation_id, fresh=True)
                raise await self._conflict(session, conv, "transfer")
            conv = await self._conversation(session, conversation_id, fresh=True)
            prev_agent = await session.get(Agent, previous) if previous else None
            repo.add_event(session, conv, "assigned", {"agent_id": target.public_id, "agent_name": target.name,
                                                       "transfer": True, "by": agent.public_id,
                                                       "from": prev_agent.public_id if prev_agent else None})
            notice = self._notice(session, conv, "handoff_agent_joined", name=target.name)
            webhooks.enqueue(session, self.webhook_url, "conversation.assigned",
                             await self._webhook_payload(session, conv, agent=Actor.of(target).public(), transfer=True,
                                                         by=agent.public(),
                                                         previous_assignee=Actor.of(prev_agent).public()
                                                         if prev_agent else None))
            await session.commit()
            summary = await self.summary(session, conv)
        self._after(conv, [notice], summary)
        return summary

    async def _close(self, conversation_id: str, agent: Actor, to: str, doing: str, notice_key: str,
                     event: str) -> dict:
        now = self.clock()
        async with self.sessionmaker() as session:
            conv = await self._conversation(session, conversation_id, fresh=True)
            if conv.status not in WITH_A_PERSON:
                raise await self._conflict(session, conv, doing)
            self._may_act(conv, agent, doing)
            was, holder = conv.status, conv.assignee_id
            cond = [Conversation.id == conv.id, Conversation.status == was]
            cond.append(Conversation.assignee_id == holder if holder is not None else Conversation.assignee_id.is_(None))
            res = await session.execute(update(Conversation).where(*cond)
                                        .values(status=to, assignee_id=None, updated_at=now)
                                        .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                await session.rollback()
                conv = await self._conversation(session, conversation_id, fresh=True)
                raise await self._conflict(session, conv, doing)
            conv = await self._conversation(session, conversation_id, fresh=True)
            repo.add_event(session, conv, "status", {"from": was, "to": to, "agent_id": agent.public_id})
            notices = [self._notice(session, conv, notice_key)]
            if to == RESOLVED:
                notices.append(self.surveys.start(session, conv))
            notices = [m for m in notices if m is not None]
            payload = await self._webhook_payload(session, conv, agent=agent.public(), previous_status=was)
            webhooks.enqueue(session, self.webhook_url, event, payload)
            await session.commit()
            summary = await self.summary(session, conv)
        self._typing.pop(conversation_id, None)
        self._after(conv, notices, summary)
        return summary

    async def hand_back(self, conversation_id: str, agent: Actor) -> dict:
        """pending/open -> bot: the assistant answers this conversation's next messages again."""
        return await self._close(conversation_id, agent, BOT, "hand back", "handoff_handed_back",
                                 "conversation.handed_back")

    async def resolve(self, conversation_id: str, agent: Actor) -> dict:
        """pending/open -> resolved: the next message starts a new conversation with the bot."""
        return await self._close(conversation_id, agent, RESOLVED, "resolve", "handoff_resolved",
                                 "conversation.resolved")

    def _after(self, conv: Conversation, notices: list[Message], summary: dict) -> None:
        self.hub.publish({"type": "conversation", "conversation": summary})
        for m in notices:
            self.hub.publish({"type": "message", "conversation_id": conv.public_id, "message": message_dict(m)})
        self.webhooks.wake()
        if notices:
            self._spawn(self.deliver(conv, notices))

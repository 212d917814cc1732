"""The router: stores every inbound message, decides bot vs human, stores every reply.

It is the only place that decides whether a conversation's messages go to Rasa, and (through its
hand-off desk, bot.handoff.desk) the only one that changes a conversation's status: bot, pending
(queued for a person), open (an agent has it), resolved. While pending or open, messages are pushed
to the agent inbox and never forwarded to Rasa.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from knowledge_base.language import detect, normalise_hint

from . import payloads
from .insights import returning
from .i18n import t
from .messages import Accepted, AssistantUnavailable, InboundMessage, Reply, RouteResult
from .rasa_client import RasaClient, RasaUnavailable
from .store import repository as repo
from .store.models import Contact, Conversation, Message
from .tasks import KeyedLocks

if TYPE_CHECKING:
    from .handoff.desk import Desk

log = logging.getLogger(__name__)


def is_internal_event(custom: object) -> bool:
    return isinstance(custom, dict) and isinstance(custom.get("event"), str)


class Router:
    def __init__(self, sessionmaker: async_sessionmaker, rasa: RasaClient, languages: tuple[str, ...],
                 desk: "Desk | None" = None, returning_days: int = 30):
        from .handoff.desk import Desk

        self.sessionmaker = sessionmaker
        self.rasa = rasa
        self.languages = languages
        self.returning_days = returning_days  # RETURNING_DAYS: greet a returning customer (bot.insights.returning)
        self.sentiment = None  # bot.insights.sentiment.SentimentTagger (create_app sets it unless SENTIMENT=off)
        # Rasa answers nothing when the action server is down (it logs the failed action and goes
        # on): this says why (create_app checks the action server: down, or started after the
        # given time), or None when it was up.
        self.why_silent = None
        self.desk: Desk = desk or Desk(sessionmaker)
        self._retrying = KeyedLocks()
        self._answering: set[str] = set()  # message ids being answered by handle() now

    # The status transitions the agent inbox asks for (bot.handoff.desk documents each).
    async def claim(self, conversation_id: str, agent):
        return await self.desk.claim(conversation_id, agent)

    async def transfer(self, conversation_id: str, agent, to_agent_id: str):
        return await self.desk.transfer(conversation_id, agent, to_agent_id)

    async def hand_back(self, conversation_id: str, agent):
        return await self.desk.hand_back(conversation_id, agent)

    async def resolve(self, conversation_id: str, agent):
        return await self.desk.resolve(conversation_id, agent)

    async def handle(self, msg: InboundMessage) -> RouteResult:
        """Store the customer's message, then answer it (accept, then process)."""
        accepted = await self.accept(msg)
        if isinstance(accepted, RouteResult):
            if accepted.duplicate and not accepted.replies and accepted.status == "bot" \
                    and accepted.message_id not in self._answering:
                # The first try was stored but not answered (the client was told 503: the assistant
                # or the database was away before the replies were stored): answer it now, once.
                async with self._retrying(accepted.message_id):
                    again = await self._unanswered(msg, accepted.message_id)
                    if again is not None:
                        return await self._process_tracked(again)
            return accepted  # a duplicate: answer what was answered the first time
        return await self._process_tracked(accepted)

    async def _process_tracked(self, accepted: "Accepted") -> RouteResult:
        self._answering.add(accepted.message_id)
        try:
            return await self.process(accepted)
        finally:
            self._answering.discard(accepted.message_id)

    async def _unanswered(self, msg: InboundMessage, message_public: str) -> "Accepted | None":
        async with self.sessionmaker() as session:
            stored = await repo.find_message_by_public_id(session, message_public)
            if stored is None or await repo.replies_to(session, stored):
                return None
            conv = await session.get(Conversation, stored.conversation_id)
            if conv is None or conv.status != "bot":
                return None
            contact = await session.get(Contact, conv.contact_id)
            return Accepted(msg, conv.id, conv.public_id, contact.public_id, message_public, conv.status, conv.language)

    async def accept(self, msg: InboundMessage, *, inbound_status: str | None = None) -> "Accepted | RouteResult":
        """Step 1: store the customer's message before anything else can fail.

        Returns what ``process`` needs, or the first answer's RouteResult (``duplicate=True``) when
        this platform message was stored before. ``inbound_status`` is stored in the inbound
        message's ``delivery_status`` in the same transaction (channels that answer asynchronously
        use it to find accepted messages they have not processed yet).
        """
        stored = await self._store_inbound(msg, inbound_status)
        if isinstance(stored, RouteResult):
            return stored
        accepted = Accepted(msg, *stored[:-1])
        if accepted.status in ("pending", "open"):
            await self.desk.customer_message(accepted.conversation_id, stored[-1])  # to the inbox, now
        return accepted

    async def process(self, accepted: "Accepted") -> RouteResult:
        """Step 2: ask the assistant and store its replies (unless a person has the conversation)."""
        msg = accepted.message
        conv_pk, conv_public, contact_public = accepted.conversation_pk, accepted.conversation_id, accepted.contact_id
        message_public, status, language = accepted.message_id, accepted.status, accepted.language
        if self.sentiment is not None:
            self.sentiment.tag(conv_pk, message_public, msg.text)  # in the background (bot.insights.sentiment)
        async with self.sessionmaker() as session:
            # The status now, not when the message was stored: an earlier message may have been
            # handed off in between.
            current = await session.get(Conversation, conv_pk)
            if current is not None:
                status = current.status
        if status == "resolved":
            # Only a survey answer is stored in a resolved conversation: its reply is stored with it.
            async with self.sessionmaker() as session:
                stored = await repo.find_message_by_public_id(session, message_public)
                replies = [Reply.from_message(m) for m in await repo.replies_to(session, stored)] if stored else []
            return RouteResult(conv_public, message_public, replies, language=language, status=status)
        if status in ("pending", "open"):
            # A person has (or will have) this conversation: the bot stays silent. Only an answer to
            # the hand-off's own question (an email address while pending) is acknowledged.
            replies = await self.desk.while_waiting(conv_pk, message_public, msg.text) if status == "pending" else []
            return RouteResult(conv_public, message_public, replies, language=language, status=status)

        # A returning customer's answer to "Is this about that?" (bot.insights.returning): yes asks the bot the
        # earlier question again, no is answered here.
        text_for_bot = msg.text
        said = returning.parse(msg.text)
        if said is not None:
            async with self.sessionmaker() as session:
                topic = await returning.offered_topic(session, conv_pk)
                if not (said and topic):
                    conv = await session.get(Conversation, conv_pk)
                    m = repo.add_message(session, conv, direction="out", sender_type="system",
                                         text=t("returning_new", conv.language),
                                         meta={"in_reply_to": message_public, "text_key": "returning_new"})
                    await session.commit()
                    return RouteResult(conv_public, message_public, [Reply.from_message(m)], language=language,
                                       status=status)
            text_for_bot = topic

        # 2. Ask the assistant.
        metadata = {"channel": msg.channel, "language": language, "language_detected": language,
                    "language_hint": msg.language_hint, "conversation_id": conv_public}
        if msg.verified_user_id:
            metadata["verified_user_id"] = msg.verified_user_id
        try:
            asked_at = time.time()
            raw = await self.rasa.send(contact_public, text_for_bot, metadata)
            if not raw and self.why_silent is not None:
                reason = await self.why_silent(asked_at)
                if reason:
                    raise RasaUnavailable(reason)
                log.warning("Rasa answered nothing to message %s (the action server is up)", message_public)
        except RasaUnavailable as exc:
            log.warning("assistant unavailable for message %s: %s", message_public, exc)
            async with self.sessionmaker() as session:
                conv = await session.get(Conversation, conv_pk)
                repo.add_event(session, conv, "assistant_unavailable", {"message_id": message_public, "reason": str(exc)})
                await session.commit()
            raise AssistantUnavailable(message_public, str(exc)) from exc

        # 3. Store the replies and the assistant's structured events.
        handed_off = False
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conv_pk)
            # Handed off while Rasa was answering (another message of the same conversation): the
            # bot's words are dropped, the person has the conversation now.
            silenced = conv.status in ("pending", "open")
            replies, handoff_event = self._store_assistant_output(session, conv, raw, message_public, silenced)
            if handoff_event is None and not silenced and self.returning_days and said is None \
                    and not returning.answered_from_kb(raw) and await returning.is_first_message(session, conv.id):
                found = await returning.previous_topic(session, conv, self.returning_days)
                if found is not None:
                    replies.append(Reply.from_message(returning.greeting(session, conv, found, message_public)))
            if handoff_event is not None and not silenced:
                # bot -> pending; the customer is told their place in the queue (after the bot's words)
                extra = await self.desk.hand_off(session, conv, handoff_event, message_public)
                replies.extend(extra)
                handed_off = conv.status == "pending"
            await session.commit()
        if handed_off:
            status = "pending"
            await self.desk.announce(conv_pk)
        return RouteResult(conv_public, message_public, replies, language=language, status=status)

    @staticmethod
    def _store_assistant_output(session, conv: Conversation, raw: list, in_reply_to: str,
                                silenced: bool) -> tuple[list[Reply], dict | None]:
        """Rasa's answer: structured events are stored as events, the rest as the bot's messages
        (unless ``silenced``). Returns the replies and the hand-off event, if there was one."""
        replies: list[Reply] = []
        handoff_event: dict | None = None
        for item in raw:
            if not isinstance(item, dict):
                continue
            custom = item.get("custom")
            if is_internal_event(custom):
                repo.add_event(session, conv, custom["event"], {**custom, "message_id": in_reply_to})
                if custom["event"] == "handoff":
                    handoff_event = custom
                continue
            text = item.get("text") if isinstance(item.get("text"), str) else None
            buttons = item.get("buttons") if isinstance(item.get("buttons"), list) else None
            if (text is None and buttons is None and custom is None) or silenced:
                continue
            repo.add_message(session, conv, direction="out", sender_type="bot", text=text, buttons=buttons,
                             custom=custom if isinstance(custom, dict) else None, meta={"in_reply_to": in_reply_to})
            replies.append(Reply(text, buttons, custom if isinstance(custom, dict) else None))
        return replies, handoff_event

    async def finish_handoff(self, conversation_pk: int) -> bool:
        """A person was promised and the customer left the hand-off form unanswered
        (bot.handoff.unfinished): the assistant ends the form with what it captured, the conversation
        is queued, and the customer is told through their channel. True when it was queued."""
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conversation_pk)
            if conv is None or conv.status != "bot":
                return False
            contact = await session.get(Contact, conv.contact_id)
            last_in = (await session.execute(
                select(Message.public_id).where(Message.conversation_id == conv.id, Message.direction == "in")
                .order_by(Message.id.desc()).limit(1))).scalar_one_or_none() or ""
            before = (await session.execute(select(func.max(Message.id)).where(
                Message.conversation_id == conv.id))).scalar_one_or_none() or 0
            metadata = {"channel": conv.channel, "language": conv.language, "language_detected": conv.language,
                        "conversation_id": conv.public_id}
            contact_public = contact.public_id
        raw = await self.rasa.send(contact_public, "/finish_handoff", metadata)
        async with self.sessionmaker() as session:
            conv = await session.get(Conversation, conversation_pk)
            silenced = conv.status != "bot"
            # marks the promise as finished, whatever the assistant answered (bot.handoff.unfinished)
            repo.add_event(session, conv, "handoff_unfinished", {"message_id": last_in})
            _, handoff_event = self._store_assistant_output(session, conv, raw, last_in, silenced)
            if handoff_event is not None and not silenced:
                await self.desk.hand_off(session, conv, handoff_event, last_in)
            queued = conv.status == "pending" and not silenced
            await session.commit()
            told = list((await session.execute(select(Message).where(
                Message.conversation_id == conv.id, Message.id > before, Message.direction == "out")
                .order_by(Message.id))).scalars().all())
        if queued:
            await self.desk.announce(conversation_pk)
        if told:
            await self.desk.deliver(conv, told)
        return queued

    async def _store_inbound(self, msg: InboundMessage, inbound_status: str | None = None):
        async with self.sessionmaker() as session:
            if msg.platform_message_id:
                dup = await repo.find_message_by_platform_id(session, msg.channel, msg.platform_message_id)
                if dup is not None:
                    return await self._duplicate_result(session, dup)
            contact = await repo.get_or_create_contact(session, msg.channel, msg.source_id,
                                                       verified=bool(msg.verified_user_id), name=msg.profile_name)
            # An answer to a satisfaction survey belongs to the resolved conversation it was asked in.
            survey = await self.desk.surveys.intercept(session, contact, msg.channel, msg.text)
            if survey is not None:
                conv, lang = survey.conversation, survey.conversation.language
            else:
                conv = await repo.current_conversation(session, contact, msg.channel)
                lang = detect(msg.text, previous=conv.language, hint=normalise_hint(msg.language_hint, self.languages),
                              supported=self.languages, default=self.languages[0]).lang
                conv.language = lang
            meta = {k: v for k, v in {"language": lang, "hint": msg.language_hint,
                                      **(msg.metadata or {})}.items() if v is not None}
            if payloads.is_payload(msg.text):
                # A button click: kept with the title of the button offered (what the customer saw), so
                # that nobody reading the conversation meets a payload such as "/affirm".
                for buttons in await repo.recent_buttons(session, contact.id, msg.channel):
                    title = payloads.button_title(buttons, msg.text)
                    if title:
                        meta["title"] = title
                        break
            m = repo.add_message(session, conv, direction="in", sender_type="customer", text=msg.text or None,
                                 meta=meta, platform_message_id=msg.platform_message_id)
            m.delivery_status = inbound_status
            if survey is not None:
                await session.flush()
                self.desk.surveys.answer(session, survey, m)
            try:
                await session.commit()
            except IntegrityError:
                # The same platform message arrived twice at once: the other copy won.
                await session.rollback()
                dup = await repo.find_message_by_platform_id(session, msg.channel, msg.platform_message_id or "")
                if dup is None:
                    raise
                return await self._duplicate_result(session, dup)
            return conv.id, conv.public_id, contact.public_id, m.public_id, conv.status, conv.language, m

    async def _duplicate_result(self, session, dup: Message) -> RouteResult:
        conv = await session.get(Conversation, dup.conversation_id)
        replies = [Reply.from_message(m) for m in await repo.replies_to(session, dup)]
        return RouteResult(conv.public_id, dup.public_id, replies, duplicate=True, language=conv.language,
                           status=conv.status)

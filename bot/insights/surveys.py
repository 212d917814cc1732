"""Satisfaction surveys after an agent resolved a conversation.

``SURVEY=csat`` (the default): when an agent resolves a conversation, the customer is asked on its
channel and in its language for CSAT, 1-5 (buttons in the widget, a list on WhatsApp), then for one
optional free-text comment (with a Skip button). ``SURVEY=csat,nps`` asks NPS, 0-10, in between
(buttons in the widget; WhatsApp shows at most ten choices, so there the customer types the number).
``SURVEY=off`` asks nothing.

An answer is a button's payload (``/survey{"q": "csat", "score": 4}``) or the number typed alone
("4", "４", "4/5", "4 stars" is not one). It is stored in the resolved conversation, never opens a new
one, and the next question is the reply. While the comment is asked, any text is the comment.
A message that does not answer the waiting question ends the survey (stage ``abandoned``) and goes
to the bot as usual; so does every message more than ``SURVEY_HOURS`` after the question.
A late tap on an old survey's button is stored in that survey's conversation and answered with
nothing (the bot never sees a survey payload).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import payloads
from ..clock import aware
from ..i18n import t
from ..store import repository as repo
from ..store.models import Contact, Conversation, Message, SurveyResponse, utcnow

SURVEY_KINDS = ("off", "csat", "csat,nps")
OPEN_STAGES = ("csat", "nps", "comment")
MAX_COMMENT_CHARS = 2000
SCALES = {"csat": (1, 5), "nps": (0, 10)}
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*(?:/\s*(?:5|10))?\s*[.!]?\s*$")


def payload(question: str, score: int | None = None) -> str:
    return payloads.make("survey", {"q": question} if score is None else {"q": question, "score": score})


def parse_payload(text: str) -> dict | None:
    """The survey button a text is the payload of, or None."""
    data = payloads.parse(text, "survey")
    return data if data is not None and data.get("q") in ("csat", "nps", "skip") else None


def parse_answer(stage: str, text: str) -> int | str | None:
    """The answer ``text`` gives to the question of ``stage``: a score, a comment, "skip", or None."""
    text = (text or "").strip()
    button = parse_payload(text)
    if stage == "comment":
        if button is not None:
            return "skip" if button["q"] == "skip" else None
        return text[:MAX_COMMENT_CHARS] if text else None
    low, high = SCALES[stage]
    if button is not None:
        score = button.get("score")
        ok = button["q"] == stage and isinstance(score, int) and not isinstance(score, bool) and low <= score <= high
        return score if ok else None
    m = _NUMBER.match(unicodedata.normalize("NFKC", text))
    if m is None:
        return None
    score = int(m.group(1))
    return score if low <= score <= high else None


def question(stage: str, channel: str, language: str | None) -> tuple[str, list | None]:
    """The text and buttons that ask the question of ``stage``."""
    if stage == "csat":
        return t("survey_csat", language), [{"title": "★" * n + f" {n}", "payload": payload("csat", n)}
                                              for n in range(5, 0, -1)]
    if stage == "nps":
        if channel == "whatsapp":
            return t("survey_nps", language) + "\n" + t("survey_nps_type", language), None
        return t("survey_nps", language), [{"title": str(n), "payload": payload("nps", n)} for n in range(11)]
    return t("survey_comment", language), [{"title": t("survey_skip", language), "payload": payload("skip")}]


@dataclass
class SurveyTurn:
    """An inbound message that belongs to a survey: store it in ``conversation``, then ``answer``."""
    survey: SurveyResponse
    conversation: Conversation
    answer: int | str | None  # None: a late or wrong tap, stored and not answered


class Surveys:
    def __init__(self, kind: str = "csat", hours: float = 24.0, clock=utcnow):
        if kind not in SURVEY_KINDS:
            raise ValueError(f"SURVEY must be one of {', '.join(SURVEY_KINDS)}, got {kind!r}")
        self.kind = kind
        self.window = timedelta(hours=hours)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings) -> "Surveys":
        return cls(getattr(settings, "survey", "csat"), getattr(settings, "survey_hours", 24.0))

    def start(self, session: AsyncSession, conv: Conversation) -> Message | None:
        """After a resolve: the survey's first question (stored, to be delivered), or None when off."""
        if self.kind == "off":
            return None
        session.add(SurveyResponse(conversation_id=conv.id, contact_id=conv.contact_id, channel=conv.channel,
                                   language=conv.language, stage="csat", with_nps=self.kind == "csat,nps",
                                   asked_at=self.clock()))
        return self._ask(session, conv, "csat", None)

    def _ask(self, session: AsyncSession, conv: Conversation, stage: str, in_reply_to: str | None) -> Message:
        text, buttons = question(stage, conv.channel, conv.language)
        meta = {"text_key": f"survey_{stage}", "survey": stage}
        if in_reply_to:
            meta["in_reply_to"] = in_reply_to
        return repo.add_message(session, conv, direction="out", sender_type="system", text=text, buttons=buttons,
                                meta=meta)

    async def intercept(self, session: AsyncSession, contact: Contact, channel: str, text: str) -> SurveyTurn | None:
        """Whether this message of ``contact`` answers (or taps) a survey; ends a survey it does not answer."""
        survey = (await session.execute(
            select(SurveyResponse).where(SurveyResponse.contact_id == contact.id, SurveyResponse.channel == channel)
            .order_by(SurveyResponse.id.desc()).limit(1))).scalar_one_or_none()
        if survey is None:
            return None
        conv = await session.get(Conversation, survey.conversation_id)
        if conv is None or conv.status != "resolved":
            return None
        is_button = parse_payload((text or "").strip()) is not None
        waiting = survey.stage in OPEN_STAGES and aware(survey.asked_at) + self.window >= self.clock()
        answer = parse_answer(survey.stage, text) if waiting else None
        if answer is not None:
            return SurveyTurn(survey, conv, answer)
        if waiting:
            survey.stage = "abandoned"
        return SurveyTurn(survey, conv, None) if is_button else None

    def answer(self, session: AsyncSession, turn: SurveyTurn, message: Message) -> list[Message]:
        """Record the answer of ``turn`` (``message`` is stored) and ask the next question."""
        s, now = turn.survey, self.clock()
        if turn.answer is None:
            return []
        if s.stage == "csat":
            s.csat = int(turn.answer)
            s.stage = "nps" if s.with_nps else "comment"
        elif s.stage == "nps":
            s.nps = int(turn.answer)
            s.stage = "comment"
        else:
            if turn.answer != "skip":
                s.comment = str(turn.answer)
            s.stage = "done"
        s.answered_at = now
        s.asked_at = now  # the window runs from the latest question
        repo.add_event(session, turn.conversation, "survey",
                       {"csat": s.csat, "nps": s.nps, "comment": s.comment is not None, "stage": s.stage,
                        "message_id": message.public_id})
        if s.stage == "done":
            return [repo.add_message(session, turn.conversation, direction="out", sender_type="system",
                                     text=t("survey_thanks", turn.conversation.language),
                                     meta={"text_key": "survey_thanks", "in_reply_to": message.public_id})]
        return [self._ask(session, turn.conversation, s.stage, message.public_id)]

"""A scripted stand-in for Rasa and the action server that answers what the real bot sends at a
turn (texts, buttons and the action server's structured events, as actions/faq.py and
actions/handoff.py send them), and a helper that has one customer talk through the gateway's REST
channel. Used where a test needs exact bot turns: tests/inbox/test_containment.py,
tests/inbox/test_clicked_buttons.py."""
from __future__ import annotations

import uuid

from aiohttp import web

YES_NO = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
SKIP = [{"title": "Skip", "payload": "/skip"}]


# --- what the real bot answers (actions/faq.py, actions/handoff.py), one turn each --------------

def answer(query: str, decision: str = "answer") -> list[dict]:
    return [{"text": f"Here is how: {query}. [Read more](/help/en/article)"},
            {"custom": {"event": "kb_answer", "decision": decision, "query": query,
                        "articles": [{"article_id": "article-en", "group": "article", "title": "Article"}]}},
            {"text": "Did that answer your question?", "buttons": YES_NO}]


def dont_know(query: str) -> list[dict]:
    return [{"text": "I'm sorry, I don't know the answer to that yet.",
             "buttons": [{"title": "Talk to a person", "payload": "/request_human"},
                         {"title": "Ask something else", "payload": "/ask_something_else"}]},
            {"custom": {"event": "kb_answer", "decision": "handoff", "query": query, "articles": []}}]


def clarify(query: str) -> list[dict]:
    return [{"text": "Which of these do you mean?",
             "buttons": [{"title": "Pause your subscription", "payload": '/choose_article{"article_group":"pause"}'},
                         {"title": "None of these", "payload": "/deny"}]},
            {"custom": {"event": "kb_answer", "decision": "clarify", "query": query, "articles": []}}]


def feedback(helpful: bool) -> list[dict]:
    said = "Glad I could help!" if helpful else "Sorry. Shall I connect you with a person?"
    return [{"custom": {"event": "kb_feedback", "helpful": helpful, "group": "article"}}, {"text": said}]


def form_starts(reason: str) -> list[dict]:
    return [{"custom": {"event": "handoff_requested", "reason": reason}},
            {"text": "Before I connect you: what's your name? You can also skip this.", "buttons": SKIP}]


def handed_off(reason: str) -> list[dict]:
    return [{"text": "Thanks. I'm handing you over to our team now."},
            {"custom": {"event": "handoff", "reason": reason, "summary": "The customer asked.", "captured": {},
                        "articles_shown": [], "skipped": ["name", "email"], "language": "en", "sentiment": "neutral"}}]


KB_DOWN = [{"text": "Our help articles are unavailable right now."},
           {"custom": {"event": "kb_unavailable", "reason": "no index"}}]
SMALL_TALK = [{"text": "Hello! How can I help?"}]


class ScriptedAssistant:
    """Rasa's REST channel in front of the action server, scripted: the next message gets the answer
    queued for it (what the real bot would send at that turn; the tests send one message at a time)."""

    def __init__(self):
        self.queued: list[tuple[str, list[dict]]] = []
        self.url = ""

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        text, answer_ = self.queued.pop(0)
        assert body["message"] == text, (body["message"], text)
        return web.json_response([{"recipient_id": body["sender"], **item} for item in answer_])

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


async def converse(gw, scripted: ScriptedAssistant, turns, sender: str | None = None, **metadata) -> str:
    """One customer's conversation (a new one, or more of ``sender``'s) through the REST channel;
    returns the sender id."""
    sender = sender or f"c-{uuid.uuid4().hex[:10]}"
    for text, bot in turns:
        scripted.queued.append((text, bot))
        status, _ = await gw.ask(sender, text, **metadata)
        assert status == 200 and not scripted.queued
    return sender

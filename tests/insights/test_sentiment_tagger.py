"""The gateway's background sentiment tagging (bot.insights.sentiment) against a real SQLite database and a
stand-in for the action server's /kb/sentiment: messages are tagged in batches, every one of them."""
from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.editor.publishing import KbUnavailable
from bot.keys import SESSIONMAKER
from bot.insights.sentiment import BATCH_SIZE, SentimentTagger
from bot.settings import Settings
from bot.ops.stack import free_port
from bot.store import repository as repo


class FakeKb:
    """Answers like /kb/sentiment, slowly, and remembers each request's texts."""

    def __init__(self, fail_with: str | None = None):
        self.requests: list[list[str]] = []
        self.fail_with = fail_with

    async def sentiment(self, texts: list[str]) -> dict:
        self.requests.append(list(texts))
        await asyncio.sleep(0.05)
        if self.fail_with:
            raise KbUnavailable(self.fail_with)
        return {"results": [{"label": "negative" if "!" in t else "neutral", "p_negative": 0.9 if "!" in t else 0.1,
                             "p_positive": 0.1, "severity": "high" if "!" in t else "none"} for t in texts]}


@pytest.fixture
async def app_and_conversation(tmp_path):
    dead = free_port()
    settings = Settings.from_env({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                                  "RASA_URL": f"http://127.0.0.1:{dead}", "ACTION_SERVER_URL": f"http://127.0.0.1:{dead}",
                                  "SENTIMENT": "off"})
    async with TestClient(TestServer(create_app(settings))) as client:
        sm = client.app[SESSIONMAKER]
        async with sm() as session:
            contact = await repo.get_or_create_contact(session, "rest", "tagged-customer")
            conv = await repo.current_conversation(session, contact, "rest")
            await session.commit()
            yield sm, conv.id, tmp_path / "gw.db"


def tags(db_path) -> list[dict]:
    with sqlite3.connect(db_path) as db:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT data FROM conversation_events WHERE type = 'sentiment' ORDER BY id")]


async def wait_for_tags(db_path, n: int) -> list[dict]:
    for _ in range(200):
        found = tags(db_path)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.02)
    return tags(db_path)


async def test_messages_that_arrive_together_are_tagged_in_few_requests_and_all_stored(app_and_conversation):
    sm, conv_pk, db_path = app_and_conversation
    kb = FakeKb()
    tagger = SentimentTagger(sm, kb)
    n = BATCH_SIZE + 8
    for i in range(n):
        tagger.tag(conv_pk, f"m{i}", f"message {i}{'!' if i % 2 else ''}")
    tagger.tag(conv_pk, "button", "/affirm")  # a button payload carries no feeling
    found = await wait_for_tags(db_path, n)
    assert sorted(t["message_id"] for t in found) == sorted(f"m{i}" for i in range(n))
    assert {t["message_id"]: t["severity"] for t in found}["m1"] == "high"
    assert len(kb.requests) == 2 and [len(r) for r in kb.requests] == [BATCH_SIZE, 8]
    tagger.tag(conv_pk, "later", "one more")  # the worker starts again for what comes later
    assert len(await wait_for_tags(db_path, n + 1)) == n + 1
    await tagger.stop()


async def test_a_refused_request_leaves_the_messages_untagged_and_the_tagger_working(app_and_conversation):
    sm, conv_pk, db_path = app_and_conversation
    kb = FakeKb(fail_with="the action server answered 400")  # not worth a retry
    tagger = SentimentTagger(sm, kb)
    tagger.tag(conv_pk, "m1", "hello")
    await asyncio.wait_for(tagger._worker, 5)  # the worker has given up on it: nothing more will happen
    assert tags(db_path) == [] and kb.requests == [["hello"]]
    kb.fail_with = None
    tagger.tag(conv_pk, "m2", "hello again")
    assert [t["message_id"] for t in await wait_for_tags(db_path, 1)] == ["m2"]
    await tagger.stop()

"""The editors' workspace through the real stack (Rasa, the action server with the real index, the
stack's own gateway): publish -> the bot answers it -> editing the draft does not change what the
bot says -> unpublish -> the bot stops answering; "try a question" with a draft; scheduled
publishing. (How fast is measured by bench/editor_publish.py; the waits here are only bounds.)"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from knowledge_base.config import PROJECT_ROOT

from ..inbox.conftest import PASSWORD
from .conftest import EditorClient

pytestmark = pytest.mark.stack

CUPPING = {"locale": "en", "group": "cupping-sessions", "title": "Do you host coffee cupping sessions?",
           "body": "Yes: every first Sunday of the month our Hamburg roastery hosts a free cupping session at 15:00.\n\n"
                   "## Signing up\nReserve a seat at brewbox.example/cupping; there are twelve seats.",
           "questions": ["Can I join a coffee tasting at your roastery?", "Do you run cupping events?"],
           "tags": ["events"]}
QUESTION = "Can I join a coffee cupping tasting at your Hamburg roastery?"
LINK = "/help/en/cupping-sessions"


def bot_text(stack, question: str = QUESTION) -> str:
    _, replies = stack.ask(f"ed-{uuid.uuid4().hex[:8]}", question)
    return " ".join(r.get("text") or "" for r in replies)


def wait_for(stack, present: bool, timeout: float = 20.0) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (LINK in bot_text(stack)) == present:
            return time.time() - t0
        time.sleep(0.2)
    raise AssertionError(f"the bot did not {'start' if present else 'stop'} answering within {timeout} s")


@pytest.fixture
async def editors(running_stack):
    """Two editors and an admin on the stack's own gateway (accounts made with the CLI)."""
    clients = {}
    for key, role in (("eva", "editor"), ("edd", "editor"), ("adm", "admin")):
        email = f"{key}-{uuid.uuid4().hex[:6]}@example.com"
        p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", key, "--role", role],
                           input=PASSWORD + "\n", env=running_stack.env, capture_output=True, text=True,
                           cwd=PROJECT_ROOT, timeout=120)
        assert p.returncode == 0, p.stderr
        c = EditorClient(running_stack.url)
        await c.login(email)
        clients[key] = c
    yield clients
    for c in clients.values():
        await c.close()


async def test_publish_reaches_the_bot_and_unpublish_stops_it(running_stack, editors):
    eva, edd = editors["eva"], editors["edd"]
    assert LINK not in bot_text(running_stack)
    status, body = await eva.post("/api/editor/articles", CUPPING)
    assert status == 201, body
    path = f"/api/editor/articles/{body['article']['id']}"
    assert LINK not in bot_text(running_stack)  # a draft is not searchable
    await eva.post(path + "/submit")
    assert (await edd.post(path + "/approve"))[0] == 200
    t0 = time.time()
    status, body = await eva.post(path + "/publish")
    assert status == 200, body
    assert body["article"]["live"] and body["sync"]["changed"] and body["sync"]["embedded_vectors"] > 0
    waited = wait_for(running_stack, present=True)
    print(f"publish -> answered by the bot: {time.time() - t0:.2f} s (sync {body['sync']['ms']} ms, "
          f"then {waited:.2f} s of polling)")

    # editing the published article makes a draft; customers keep getting the published text
    _, detail = await eva.get(path)
    status, _ = await eva.put(path, {"base_version": detail["article"]["head_version"],
                                     "body": "DRAFT WORDING that is not approved yet.\n\n" + CUPPING["body"]})
    assert status == 200
    text = bot_text(running_stack)
    assert LINK in text and "DRAFT WORDING" not in text and "every first Sunday" in text

    # try-a-question shows the draft's effect without publishing it
    status, tried = await eva.post("/api/editor/try", {"question": QUESTION, "language": "en",
                                                       "article_id": "cupping-sessions-en"})
    assert status == 200, tried
    assert tried["current"]["hits"][0]["group"] == "cupping-sessions"
    assert any(h["draft"] for h in tried["with_draft"]["hits"])
    assert "DRAFT WORDING" not in bot_text(running_stack)

    t0 = time.time()
    status, body = await eva.post(path + "/unpublish")
    assert status == 200 and not body["article"]["live"], body
    wait_for(running_stack, present=False)
    print(f"unpublish -> no longer answered: {time.time() - t0:.2f} s")
    _, audit = await eva.get("/api/editor/audit?article_id=cupping-sessions-en")
    assert [e["action"] for e in audit["entries"]][:3] == ["unpublish", "edit", "publish"]


async def test_try_a_question_with_a_new_draft(running_stack, editors):
    draft = {**CUPPING, "id": "cupping-preview-en", "group": "cupping-preview"}
    status, tried = await editors["eva"].post("/api/editor/try", {"question": QUESTION, "draft": draft})
    assert status == 200, tried
    assert not any(h["group"] == "cupping-preview" for h in tried["current"]["hits"])
    top = tried["with_draft"]["hits"][0]
    assert top["draft"] and top["group"] == "cupping-preview" and tried["changed"]
    assert tried["language"] == "en"  # detected, as for a customer
    assert tried["with_draft"]["decision"] in ("answer", "clarify")
    _, tried = await editors["eva"].post("/api/editor/try", {"question": "Wie kann ich mein Abo kündigen?"})
    assert tried["language"] == "de" and tried["current"]["hits"][0]["locale"] == "de"
    assert tried["with_draft"] is None and not tried["changed"]
    assert LINK not in bot_text(running_stack)  # nothing was published
    status, err = await editors["eva"].post("/api/editor/try", {"question": ""})
    assert status == 400 and err["field"] == "question"


WORKSHOP = {"locale": "en", "group": "latte-art-workshops", "title": "Latte art workshops",
            "body": "Our baristas teach latte art in two-hour evening workshops at the Hamburg roastery, "
                    "for up to eight people, 45 EUR per person.\n\n## Booking\nBook at brewbox.example/latte-art.",
            "questions": ["Do you offer barista classes?", "Can I learn to pour milk foam hearts with you?"],
            "tags": ["events"]}


async def test_an_english_only_article_answers_german_and_japanese_questions(running_stack, editors):
    """Cross-lingual fallback: a freshly published article with no translation answers a German and a
    Japanese customer (in English, with a note saying so), and the editor's try shows it first."""
    eva, edd = editors["eva"], editors["edd"]
    status, body = await eva.post("/api/editor/articles", WORKSHOP)
    assert status == 201, body
    path = f"/api/editor/articles/{body['article']['id']}"
    await eva.post(path + "/submit")
    assert (await edd.post(path + "/approve"))[0] == 200
    assert (await eva.post(path + "/publish"))[0] == 200
    link = "/help/en/latte-art-workshops"
    try:
        for question, lang in (("Bietet ihr Kurse für Latte Art an?", "de"),
                               ("ラテアートの講座はありますか？", "ja")):
            status, tried = await eva.post("/api/editor/try", {"question": question})
            assert status == 200 and tried["language"] == lang, tried
            assert tried["current"]["hits"][0]["group"] == "latte-art-workshops", tried
            deadline = time.time() + 20  # the publish reaches the action server within a poll
            while link not in bot_text(running_stack, question) and time.time() < deadline:
                time.sleep(0.2)
            assert link in bot_text(running_stack, question), f"{lang}: not answered from {link}"
    finally:
        await eva.post(path + "/unpublish")


async def test_admin_force_and_scheduled_publishing(running_stack, editors):
    adm, eva = editors["adm"], editors["eva"]
    article = {**CUPPING, "group": "cupping-scheduled", "title": "Scheduled cupping sessions"}
    _, body = await eva.post("/api/editor/articles", article)
    path = f"/api/editor/articles/{body['article']['id']}"
    when = (datetime.now(timezone.utc) + timedelta(seconds=3)).isoformat()
    status, err = await eva.post(path + "/publish", {"publish_at": when})
    assert status == 422  # not approved
    status, body = await adm.post(path + "/publish", {"publish_at": when, "force": True})
    assert status == 200 and body["article"]["publish_at"] and not body["article"]["live"], body
    deadline = time.time() + 30
    while time.time() < deadline:
        _, detail = await eva.get(path)
        if detail["article"]["live"]:
            break
        await asyncio.sleep(0.5)
    assert detail["article"]["live"] and detail["article"]["status"] == "published"
    _, audit = await eva.get(f"/api/editor/audit?article_id={body['article']['id']}")
    actions = [e["action"] for e in audit["entries"]]
    assert actions[:3] == ["publish", "schedule_publish", "approval_bypassed"]
    assert audit["entries"][1]["details"]["forced"] is True
    assert (await adm.post(path + "/archive"))[0] == 200


def test_the_action_servers_index_routes_need_the_internal_token(running_stack):
    from ..conftest import post_json

    body = {"articles": [{"id": "evil-en", "locale": "en", "title": "Evil", "body": "Replace everything."}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        status, err = post_json(running_stack.action_url + "/kb/sync", body, headers=headers)
        assert status == 401, (headers, status, err)
        status, _ = post_json(running_stack.action_url + "/kb/try", {"question": "hi"}, headers=headers)
        assert status == 401
    assert LINK not in bot_text(running_stack) and "/help/en/evil" not in bot_text(running_stack, "Replace everything")

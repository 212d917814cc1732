"""The inbox's API with the real gateway: auth and CSRF, every route closed to anonymous callers,
replies reaching a REST customer (polling), notes that never do, transfers, typing, canned answers,
admin, the command line, and the hand-off texts in every language."""
from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.i18n import LANGUAGES, t
from bot.inbox.views import PUBLIC_ROUTES
from bot.keys import ROUTER
from knowledge_base.config import PROJECT_ROOT

from ..conftest import wait_until
from .conftest import PASSWORD, make_settings, next_event, start_gateway


def sender() -> str:
    return f"cust-{uuid.uuid4().hex[:8]}"


async def queue(agent) -> list[dict]:
    return (await agent.get("/api/inbox/conversations?view=queue"))[1]["conversations"]


async def handed_off(gateway, agent, text="human", **metadata) -> tuple[str, str]:
    s = sender()
    await gateway.ask(s, text, **metadata)
    conv = next(c for c in await queue(agent) if c["handoff"]["summary"].find(text) >= 0)
    return s, conv["id"]


# --- auth ----------------------------------------------------------------------------------------

async def test_sign_in_sets_a_safe_cookie_and_bad_passwords_are_refused(gateway):
    await gateway.add_agent("dora@example.com", "Dora")
    c = gateway.agent_client()
    status, body = await c.login("dora@example.com", "wrong password!")
    assert status == 401 and body["error"] == "wrong email or password"
    status, body = await c.login("nobody@example.com", PASSWORD)
    assert status == 401 and body["error"] == "wrong email or password"
    async with c.http.post(gateway.url + "/api/inbox/login",
                           json={"email": "DORA@example.com", "password": PASSWORD}) as r:
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        body = await r.json()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie and "Path=/" in cookie
    assert body["agent"]["name"] == "Dora" and len(body["csrf_token"]) > 20
    status, me = await c.get("/api/inbox/me")
    assert status == 200 and me["csrf_token"] == body["csrf_token"]
    with sqlite3.connect(gateway.db_path) as db:
        stored = db.execute("SELECT token_hash FROM agent_sessions").fetchone()[0]
        pw = db.execute("SELECT password_hash FROM agents").fetchone()[0]
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in stored and pw.startswith("$argon2id$")
    await c.close()


async def test_secure_cookie_when_the_public_url_is_https(tmp_path, assistant):
    gw = await start_gateway(make_settings(tmp_path, assistant, PUBLIC_URL="https://support.example.com"),
                             tmp_path / "gw.db")
    try:
        await gw.add_agent("eve@example.com", "Eve")
        async with gw.http.post(gw.url + "/api/inbox/login", json={"email": "eve@example.com",
                                                                   "password": PASSWORD}) as r:
            assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]
    finally:
        await gw.close()


async def test_csrf_is_required_on_every_state_change_and_logout_ends_the_session(gateway, agents):
    ben = agents["ben"]
    _, cid = await handed_off(gateway, ben)
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/claim", csrf=None)
    assert status == 403 and "CSRF" in body["error"]
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/claim", csrf="forged")
    assert status == 403
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/claim", csrf=agents["cleo"].csrf)
    assert status == 403, "another session's token does not work"
    # a cross-site form cannot send JSON with the header; a form post without it is refused
    async with ben.http.post(gateway.url + f"/api/inbox/conversations/{cid}/claim", data={"x": "1"}) as r:
        assert r.status == 403
    assert (await ben.post(f"/api/inbox/conversations/{cid}/claim"))[0] == 200
    # the WebSocket wants the token and a same-origin Origin
    async with ben.http.get(gateway.url + "/api/inbox/ws?csrf=bad", headers={"Origin": gateway.url}) as r:
        assert r.status == 403
    async with ben.http.get(gateway.url + f"/api/inbox/ws?csrf={ben.csrf}",
                            headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403
    status, _ = await ben.post("/api/inbox/logout", csrf=None)
    assert status == 403
    status, _ = await ben.post("/api/inbox/logout")
    assert status == 200
    assert (await ben.get("/api/inbox/me"))[0] == 401
    assert (await ben.get("/api/inbox/conversations"))[0] == 401


async def test_an_editor_signs_in_but_cannot_work_the_inbox(gateway, agents):
    await gateway.add_agent("eda@example.com", "Eda Editor", "editor")
    eda = gateway.agent_client()
    try:
        assert (await eda.login("eda@example.com"))[0] == 200
        assert (await eda.get("/api/inbox/me"))[0] == 200
        for path in ("/api/inbox/conversations", "/api/inbox/agents", "/api/inbox/canned?q=refund"):
            status, body = await eda.get(path)
            assert status == 403 and "agent or admin" in body["error"], (path, body)
        s, cid = await handed_off(gateway, agents["ben"])
        assert (await eda.get(f"/api/inbox/conversations/{cid}"))[0] == 403
        assert (await eda.post(f"/api/inbox/conversations/{cid}/claim"))[0] == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await eda.ws()
        assert exc.value.status == 403
    finally:
        await eda.close()


async def test_a_disabled_agent_cannot_sign_in_and_is_signed_out(gateway, agents):
    ada, ben = agents["ada"], agents["ben"]
    ws = await ben.ws()
    await next_event(ws, "hello")
    status, body = await ben.post(f"/api/inbox/admin/agents/{ben.agent['id']}/disable")
    assert status == 403 and "admin" in body["error"], "agents cannot manage accounts"
    status, body = await ada.post(f"/api/inbox/admin/agents/{ben.agent['id']}/disable")
    assert status == 200 and body["agent"]["active"] is False
    while True:  # events may still be queued before the close
        msg = await asyncio.wait_for(ws.receive(), 5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert (await ben.get("/api/inbox/me"))[0] == 401
    fresh = gateway.agent_client()
    status, body = await fresh.login("ben@example.com")
    assert status == 403 and body["error"] == "this account is disabled"
    status, _ = await fresh.login("ben@example.com", "not the password")
    assert status == 401, "a wrong password does not reveal that the account is disabled"
    assert (await ada.post(f"/api/inbox/admin/agents/{ben.agent['id']}/enable"))[0] == 200
    assert (await fresh.login("ben@example.com"))[0] == 200
    assert (await ada.post(f"/api/inbox/admin/agents/{ada.agent['id']}/disable"))[0] == 409
    await fresh.close()


async def test_too_many_failed_sign_ins_are_throttled(gateway):
    await gateway.add_agent("finn@example.com", "Finn")
    c = gateway.agent_client()
    for _ in range(10):
        assert (await c.login("finn@example.com", "wrong wrong wrong"))[0] == 401
    status, body = await c.login("finn@example.com")
    assert status == 429
    await c.close()


async def test_every_inbox_route_refuses_anonymous_callers(gateway, agents):
    """Walks every route under /inbox and /api/inbox: only the page shell, its static files and the
    sign-in are public; everything else answers 401 to a caller without a session."""
    anon = aiohttp.ClientSession()
    bogus = gateway.agent_client()
    bogus.http.cookie_jar.update_cookies({"inbox_session": "not-a-session"})
    checked = []
    try:
        for route in gateway.app.router.routes():
            path = route.resource.canonical if route.resource else ""
            if not (path.startswith("/inbox") or path.startswith("/api/inbox")) or route.method == "HEAD":
                continue
            if (route.method, path) in PUBLIC_ROUTES:
                continue
            url = gateway.url + re.sub(r"\{[^}]+\}", "x" * 32, path)
            for client in (anon, bogus.http):
                async with client.request(route.method, url, json={}, headers={"Origin": gateway.url}) as r:
                    assert r.status == 401, f"{route.method} {path}: {r.status}"
                    assert (await r.json())["error"] == "not signed in"
            checked.append((route.method, path))
        assert len(checked) >= 18, checked
        # the public ones hold no data
        async with anon.get(gateway.url + "/inbox") as r:
            page = await r.text()
            assert r.status == 200 and "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert "cust-" not in page and "@example.com" not in page
        async with anon.get(gateway.url + "/inbox/static/../../settings.py") as r:
            assert r.status == 404
    finally:
        await anon.close()
        await bogus.close()


# --- replies, notes, typing, transfer ------------------------------------------------------------

async def test_a_reply_reaches_the_rest_customer_by_polling_and_notes_never_do(gateway, agents):
    ben = agents["ben"]
    s, cid = await handed_off(gateway, ben)
    _, first = await gateway.poll(s)
    last_id = first["messages"][-1]["id"]
    assert first["status"] == "pending"
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/reply", {"text": "not yet"})
    assert status == 409, "claim first"
    await ben.post(f"/api/inbox/conversations/{cid}/claim")
    _, polled = await gateway.poll(s, after=last_id)
    assert [m["text"] for m in polled["messages"]] == [t("handoff_agent_joined", "en", name="Ben Agent")]
    last_id = polled["messages"][-1]["id"]

    hub = gateway.app[ROUTER].desk.hub
    listening = hub.subscribers
    waiting = asyncio.create_task(gateway.poll(s, after=last_id, wait=10))  # long poll
    await wait_until(lambda: hub.subscribers == listening + 1, what="the long poll to wait")
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/notes", {"text": "VIP <b>customer</b>, refund ok"})
    assert status == 201
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/reply", {"text": "Hi, I'm Ben. <script>x</script>"})
    assert status == 201 and body["message"]["sender_type"] == "agent"
    _, polled = await asyncio.wait_for(waiting, 10)
    assert [m["text"] for m in polled["messages"]] == ["Hi, I'm Ben. <script>x</script>"]
    assert polled["messages"][0]["sender_type"] == "agent" and polled["status"] == "open"
    _, everything = await gateway.poll(s)
    assert all("VIP" not in (m["text"] or "") for m in everything["messages"]), "notes are never sent"
    with sqlite3.connect(gateway.db_path) as db:
        assert db.execute("SELECT count(*) FROM messages WHERE text LIKE '%VIP%'").fetchone()[0] == 0

    _, detail = await ben.get(f"/api/inbox/conversations/{cid}")
    kinds = [(x["kind"], x.get("sender_type"), x.get("text")) for x in detail["timeline"]]
    assert ("message", "agent", "Hi, I'm Ben. <script>x</script>") in kinds
    assert ("note", None, "VIP <b>customer</b>, refund ok") in kinds
    assert detail["conversation"]["handoff"]["summary"].startswith("The customer asked")
    # the customer's next message is in the transcript and nowhere near the bot
    await gateway.ask(s, "thank you Ben")
    _, detail = await ben.get(f"/api/inbox/conversations/{cid}")
    assert detail["timeline"][-1]["text"] == "thank you Ben"


async def test_only_the_assignee_replies_and_a_transfer_moves_the_conversation(gateway, agents):
    ben, cleo, ada = agents["ben"], agents["cleo"], agents["ada"]
    s, cid = await handed_off(gateway, ben)
    await ben.post(f"/api/inbox/conversations/{cid}/claim")
    status, body = await cleo.post(f"/api/inbox/conversations/{cid}/reply", {"text": "me too"})
    assert status == 409 and body["assignee"]["name"] == "Ben Agent"
    status, _ = await cleo.post(f"/api/inbox/conversations/{cid}/resolve")
    assert status == 403
    status, _ = await cleo.post(f"/api/inbox/conversations/{cid}/transfer", {"agent_id": cleo.agent["id"]})
    assert status == 403
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/transfer", {"agent_id": "nobody"})
    assert status == 404
    status, body = await ben.post(f"/api/inbox/conversations/{cid}/transfer", {"agent_id": cleo.agent["id"]})
    assert status == 200 and body["conversation"]["assignee"]["name"] == "Cleo Agent"
    assert (await ben.post(f"/api/inbox/conversations/{cid}/reply", {"text": "x"}))[0] == 409
    assert (await cleo.post(f"/api/inbox/conversations/{cid}/reply", {"text": "Hallo!"}))[0] == 201
    _, polled = await gateway.poll(s)
    assert polled["messages"][-1]["text"] == "Hallo!"
    assert t("handoff_agent_joined", "en", name="Cleo Agent") in [m["text"] for m in polled["messages"]]
    # an admin may resolve someone else's conversation
    assert (await ada.post(f"/api/inbox/conversations/{cid}/resolve"))[0] == 200
    assert (await cleo.post(f"/api/inbox/conversations/{cid}/resolve"))[0] == 409
    assert (await ben.get("/api/inbox/conversations/nope"))[0] == 404
    assert (await ben.post("/api/inbox/conversations/nope/claim"))[0] == 404


async def test_typing_reaches_the_rest_customer(gateway, agents):
    ben = agents["ben"]
    s, cid = await handed_off(gateway, ben)
    await ben.post(f"/api/inbox/conversations/{cid}/claim")
    assert (await gateway.poll(s))[1]["typing"] is False
    ws = await ben.ws()
    await next_event(ws, "hello")
    await ws.send_json({"type": "typing", "conversation_id": cid, "on": True})
    for _ in range(50):
        if (await gateway.poll(s))[1]["typing"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("typing was never shown")
    # a long poll begun while the agent types waits for the reply instead of answering "typing" at once
    _, seen = await gateway.poll(s)
    hub = gateway.app[ROUTER].desk.hub
    listening = hub.subscribers
    waiting = asyncio.create_task(gateway.poll(s, after=seen["messages"][-1]["id"], wait=10))
    await wait_until(lambda: hub.subscribers == listening + 1, what="the long poll to wait")
    assert not waiting.done()
    await ben.post(f"/api/inbox/conversations/{cid}/reply", {"text": "done typing"})
    _, polled = await waiting
    assert [m["text"] for m in polled["messages"]] == ["done typing"] and polled["typing"] is False
    assert (await gateway.poll(s))[1]["typing"] is False
    await ws.close()


async def test_poll_errors(gateway):
    async with gateway.http.get(gateway.url + "/webhooks/rest/messages") as r:
        assert r.status == 400
    status, body = await gateway.poll("never-seen")
    assert status == 200 and body == {"messages": [], "typing": False, "status": None}
    s = sender()
    await gateway.ask(s, "hello")
    status, body = await gateway.poll(s, after="not-a-message")
    assert status == 400


async def test_canned_answers_come_from_the_knowledge_base(gateway, agents):
    status, body = await agents["ben"].get("/api/inbox/canned?q=cancel&lang=de")
    assert status == 200
    [a] = body["answers"]
    assert a["title"] == "Cancel your subscription" and a["text"].startswith("You can cancel")
    assert (await agents["ben"].get("/api/inbox/canned?q="))[0] == 400


async def test_admin_adds_agents_from_the_page(gateway, agents):
    ada, ben = agents["ada"], agents["ben"]
    new = {"email": "gus@example.com", "name": "Gus", "role": "agent", "password": "long enough pw"}
    assert (await ben.post("/api/inbox/admin/agents", new))[0] == 403
    assert (await ada.post("/api/inbox/admin/agents", {**new, "password": "short"}))[0] == 400
    status, body = await ada.post("/api/inbox/admin/agents", new)
    assert status == 201 and body["agent"]["role"] == "agent"
    assert (await ada.post("/api/inbox/admin/agents", new))[0] == 409
    gus = gateway.agent_client()
    assert (await gus.login("gus@example.com", "long enough pw"))[0] == 200
    _, listed = await ada.get("/api/inbox/admin/agents")
    assert {a["email"] for a in listed["agents"]} == {"ada@example.com", "ben@example.com", "cleo@example.com",
                                                      "gus@example.com"}
    await gus.close()


def test_the_command_line_adds_lists_and_disables_agents(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    run = lambda *a, stdin="": subprocess.run([sys.executable, "-m", "bot", "agents", *a], input=stdin, env=env,
                                              capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    p = run("add", "hana@example.com", "--name", "Hana", "--role", "admin", stdin="a good long password\n")
    assert p.returncode == 0, p.stderr
    assert "added admin Hana <hana@example.com>" in p.stdout
    p = run("add", "ivan@example.com", "--name", "Ivan", stdin="short\n")
    assert p.returncode == 2 and "at least 10 characters" in p.stderr
    p = run("add", "hana@example.com", "--name", "Hana again", stdin="a good long password\n")
    assert p.returncode == 1 and "exists already" in p.stderr
    assert run("disable", "hana@example.com").returncode == 0
    p = run("list")
    assert p.returncode == 0 and p.stdout.strip() == "hana@example.com\tHana\tadmin\tdisabled"
    assert run("disable", "nobody@example.com").returncode == 1
    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert db.execute("SELECT password_hash FROM agents").fetchone()[0].startswith("$argon2id$")


# --- what the customer is told ---------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_hand_off_message_in_each_language_with_queue_position(gateway, agents, lang):
    ws = await agents["ben"].ws()
    await next_event(ws, "hello")
    await gateway.ask(sender(), "human first")  # someone is ahead in the queue
    _, replies = await gateway.ask(sender(), "human", language=lang)
    expected = t("handoff_queue_position", lang, position=2) + " " + t("handoff_wait_unknown", lang)
    assert replies[-1]["text"] == expected
    assert replies[0]["text"] == f"[{lang}] handing over", "the bot's own words come first"
    await ws.close()


async def test_the_wait_estimate_comes_from_recent_claims(gateway, agents):
    ben = agents["ben"]
    ws = await ben.ws()
    await next_event(ws, "hello")
    for _ in range(3):
        _, cid = await handed_off(gateway, ben, text=f"human {uuid.uuid4().hex[:6]}")
        await ben.post(f"/api/inbox/conversations/{cid}/claim")
    _, replies = await gateway.ask(sender(), "human", language="de")
    assert replies[-1]["text"] == t("handoff_queue_position", "de", position=1) + " " + t("handoff_wait_short", "de")
    await ws.close()


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_outside_business_hours_the_customer_is_told_and_asked_for_an_email(tmp_path, assistant, lang):
    tz = ZoneInfo("Europe/Berlin")
    other_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(datetime.now(tz).weekday() + 3) % 7]
    gw = await start_gateway(make_settings(tmp_path, assistant, BUSINESS_HOURS=f"{other_day} 09:00-17:00"),
                             tmp_path / "gw.db")
    try:
        s = sender()
        _, replies = await gw.ask(s, "human", language=lang)
        text = replies[-1]["text"]
        days = t("weekdays_long", lang).split(",")
        short = t("weekdays_short", lang).split(",")
        day_index = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].index(other_day)
        next_open = t("handoff_next_open", lang, day=days[day_index], time="09:00")
        assert text == t("handoff_after_hours", lang, hours=f"{short[day_index]} 09:00–17:00", timezone="Europe/Berlin",
                         position=1, next_open=next_open) + " " + t("handoff_ask_email", lang)
        # the answer goes to the ticket, not to the bot; the email is kept
        n = len(assistant.received)
        _, replies = await gw.ask(s, "Kim.Lee@Example.org", language=lang)
        assert [r["text"] for r in replies] == [t("handoff_email_saved", lang, email="kim.lee@example.org")]
        assert len(assistant.received) == n
        with sqlite3.connect(gw.db_path) as db:
            email, status = db.execute("SELECT co.email, c.status FROM contacts co JOIN conversations c ON "
                                       "c.contact_id = co.id").fetchone()
        assert email == "kim.lee@example.org" and status == "pending"
        _, replies = await gw.ask(s, "another message")
        assert replies == []
        # with the email captured by the bot, it is not asked for again
        _, replies = await gw.ask(sender(), "human with email", language=lang)
        assert replies[-1]["text"].endswith(t("handoff_reach_email", lang, email="cara@example.com"))
    finally:
        await gw.close()


def test_business_hours_parse_and_describe():
    from bot.handoff.hours import BusinessHours

    h = BusinessHours.parse("Mon-Fri 08:00-20:00; Sat 10:00-16:00", "Europe/Berlin")
    tz = ZoneInfo("Europe/Berlin")
    assert h.is_open(datetime(2026, 11, 23, 8, 0, tzinfo=tz))  # a Monday
    assert not h.is_open(datetime(2026, 11, 23, 20, 0, tzinfo=tz))
    assert not h.is_open(datetime(2026, 11, 29, 12, 0, tzinfo=tz))  # Sunday
    assert h.next_open(datetime(2026, 11, 28, 17, 0, tzinfo=tz)) == datetime(2026, 11, 30, 8, 0, tzinfo=tz)
    assert h.describe(t("weekdays_short", "de").split(",")) == "Mo–Fr 08:00–20:00; Sa 10:00–16:00"
    assert BusinessHours.parse("always", "UTC").is_open(datetime.now(tz))
    assert BusinessHours.parse("Fri-Mon 22:00-24:00", "UTC").week[6] == ((1320, 1440),)
    for bad in ("Mon-Fri", "Someday 08:00-10:00", "Mon 10:00-09:00", "Mon 25:00-26:00", ""):
        with pytest.raises(ValueError):
            BusinessHours.parse(bad, "UTC")
    with pytest.raises(ValueError, match="time zone"):
        BusinessHours.parse("always", "Mars/Olympus")


def test_bad_hand_off_settings_are_refused_with_the_key_named():
    from bot.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="BUSINESS_HOURS"):
        Settings.from_env({"BUSINESS_HOURS": "whenever"})
    with pytest.raises(SettingsError, match="BUSINESS_TIMEZONE"):
        Settings.from_env({"BUSINESS_TIMEZONE": "Nowhere/City"})
    with pytest.raises(SettingsError, match="OUTGOING_WEBHOOK_SECRET"):
        Settings.from_env({"OUTGOING_WEBHOOK_URL": "https://hooks.example.com/x"})
    with pytest.raises(SettingsError, match="OUTGOING_WEBHOOK_URL"):
        Settings.from_env({"OUTGOING_WEBHOOK_URL": "ftp://x", "OUTGOING_WEBHOOK_SECRET": "s"})


async def test_an_admin_exports_and_deletes_a_contact(gateway, agents):
    ada, ben = agents["ada"], agents["ben"]
    s, cid = await handed_off(gateway, ben)
    await ben.post(f"/api/inbox/conversations/{cid}/claim")
    await ben.post(f"/api/inbox/conversations/{cid}/notes", {"text": "VIP customer"})
    async with ada.http.get(gateway.url + f"/api/admin/contacts/rest:{s}/export") as r:
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        data = await r.json()
    conv = data["conversations"][0]
    assert conv["id"] == cid and conv["notes"][0]["text"] == "VIP customer" and conv["messages"]
    contact = data["contact"]["id"]
    headers = {"X-CSRF-Token": ben.csrf}
    async with ben.http.delete(gateway.url + f"/api/admin/contacts/{contact}", headers=headers) as r:
        assert r.status == 403, "agents may not delete contacts"
    async with ada.http.delete(gateway.url + f"/api/admin/contacts/{contact}", headers={"X-CSRF-Token": ada.csrf}) as r:
        body = await r.json()
        assert r.status == 200 and body["deleted"] == contact and body["conversations"] == 1
    assert (await ada.get(f"/api/inbox/conversations/{cid}"))[0] == 404
    async with ada.http.get(gateway.url + f"/api/admin/contacts/{contact}/export") as r:
        assert r.status == 404 and "no contact" in (await r.json())["error"]


async def test_retention_deletes_old_conversations_nobody_works_on(gateway, agents):
    from datetime import datetime, timezone

    from sqlalchemy import select, update

    from bot.keys import SESSIONMAKER
    from bot.insights.privacy import apply_retention
    from bot.store.models import Contact, Conversation, Message

    old_s, new_s = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    await gateway.ask(old_s, "hello from last year")
    await gateway.ask(new_s, "hello from today")
    await handed_off(gateway, agents["ben"])  # pending, and made old below: a person will still answer it
    long_ago = datetime.now(timezone.utc) - timedelta(days=400)
    async with gateway.app[SESSIONMAKER]() as session:
        convs = {c.id: c for c in (await session.execute(select(Conversation))).scalars()}
        new_id = next(m.conversation_id for m in (await session.execute(select(Message))).scalars()
                      if m.text == "hello from today")
        await session.execute(update(Conversation).where(Conversation.id != new_id).values(last_message_at=long_ago))
        await session.commit()
        out = await apply_retention(session, 365, f"sqlite:///{gateway.db_path.parent / 'no-tracker.db'}")
        left = {c.id: c.status for c in (await session.execute(select(Conversation))).scalars()}
        texts = [m.text for m in (await session.execute(select(Message))).scalars()]
        contacts = (await session.execute(select(Contact))).scalars().all()
    assert len(convs) == 3 and out["conversations"] == 1
    assert left == {new_id: "bot", **{i: "pending" for i, c in convs.items() if c.status == "pending"}}
    assert "hello from last year" not in texts and "hello from today" in texts
    assert len(contacts) == 3, "contacts stay (a returning customer is still recognised)"

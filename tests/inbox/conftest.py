"""Fixtures of the inbox tests: the real gateway app (in-process, real SQLite, real HTTP) in front of
a scripted stand-in for Rasa and the action server, and signed-in agent clients."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.keys import SESSIONMAKER
from bot.settings import Settings
from bot.ops.stack import free_port

PASSWORD = "correct horse battery"
GREETINGS = ("hi", "hallo", "merhaba", "こんにちは")


class FakeAssistant:
    """Answers like Rasa's REST channel: "human"/"angry"/"not helpful" (and the gateway's
    "/finish_handoff") hand off (with the bot's structured event), "promise" promises a person and
    asks the hand-off form's first question, a bare greeting gets small talk, anything else is answered "from the knowledge base". Also the action server's
    GET /search for canned answers."""

    def __init__(self):
        self.received: list[dict] = []
        self.url = ""

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        text, meta = body["message"], body.get("metadata") or {}
        lang = meta.get("language") or "en"
        low = text.lower()
        if "promise" in low:  # the hand-off form's first question, and the promise of a person
            return web.json_response([
                {"recipient_id": body["sender"], "text": f"[{lang}] your name, please?"},
                {"recipient_id": body["sender"], "custom": {"event": "handoff_requested",
                                                            "reason": "customer_request"}}])
        if "human" in low or "angry" in low or "not helpful" in low or low == "/finish_handoff":
            reason = "frustration" if "angry" in low else "not_helpful" if "not helpful" in low else "customer_request"
            captured = {"name": "Cara Customer", "email": "cara@example.com"} if "with email" in low else {}
            if "order 1234" in low:
                captured["order_number"] = "1234"
            return web.json_response([
                {"recipient_id": body["sender"], "text": f"[{lang}] handing over"},
                {"recipient_id": body["sender"], "custom": {
                    "event": "handoff", "reason": reason, "summary": f"The customer asked: \"{text}\".",
                    "articles_shown": ["cancel-subscription"], "captured": captured, "skipped": [],
                    "language": lang, "channel": meta.get("channel"), "verified_user_id": None,
                    "sentiment": "negative" if reason == "frustration" else "neutral"}},
            ])
        if low.strip() in GREETINGS:  # small talk: answered without the knowledge base
            return web.json_response([{"recipient_id": body["sender"], "text": f"[{lang}] Hello! How can I help?"}])
        return web.json_response([
            {"recipient_id": body["sender"], "text": f"bot: {text}"},
            {"recipient_id": body["sender"], "custom": {
                "event": "kb_answer", "decision": "answer", "query": text, "version": "v1",
                "articles": [{"article_id": "cancel-subscription-en", "group": "cancel-subscription", "locale": "en",
                              "title": "Cancel your subscription", "score": 0.9,
                              "link": "/help/en/cancel-subscription"}]}},
        ])

    async def search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        return web.json_response({"version": "v1", "decision": "answer", "hits": [
            {"article_id": "cancel-subscription-en", "group": "cancel-subscription", "title": "Cancel your subscription",
             "locale": "en", "score": 0.91, "link": "/help/en/cancel-subscription",
             "answer": f"You can cancel any time under Account > Subscription. ({q})", "other_language": False}]})

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


async def serve(fake, search: bool = True) -> web.AppRunner:
    """Serve a stand-in for Rasa's REST channel (and the action server's routes) on a free port."""
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", fake.webhook)
    app.router.add_get("/webhooks/rest/", fake.ok)
    app.router.add_get("/ready", fake.ok)
    if search:
        app.router.add_get("/search", fake.search)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def assistant():
    fake = FakeAssistant()
    runner = await serve(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def scripted():
    """A stand-in for Rasa that answers exactly the turns a test queues (tests/inbox/scripted_bot.py)."""
    from .scripted_bot import ScriptedAssistant

    fake = ScriptedAssistant()
    runner = await serve(fake, search=False)
    yield fake
    await runner.cleanup()


class Gateway:
    def __init__(self, server: TestServer, settings: Settings, db_path):
        self.server = server
        self.settings = settings
        self.db_path = db_path
        self.url = str(server.make_url("")).rstrip("/")
        self.http = aiohttp.ClientSession()

    @property
    def app(self):
        return self.server.app

    async def ask(self, sender: str, message: str, **metadata):
        body = {"sender": sender, "message": message}
        if metadata:
            body["metadata"] = metadata
        async with self.http.post(self.url + "/webhooks/rest/webhook", json=body) as r:
            return r.status, await r.json()

    async def poll(self, sender: str, after: str | None = None, wait: float = 0):
        params = {"sender": sender}
        if after:
            params["after"] = after
        if wait:
            params["wait"] = str(wait)
        async with self.http.get(self.url + "/webhooks/rest/messages", params=params) as r:
            return r.status, await r.json()

    async def add_agent(self, email: str, name: str, role: str = "agent", password: str = PASSWORD,
                        language: str = "en"):
        from bot.staff import accounts

        async with self.app[SESSIONMAKER]() as session:
            return await accounts.create_agent(session, email, name, role, accounts.hash_password(password), language)

    def agent_client(self) -> "AgentClient":
        return AgentClient(self.url)

    async def close(self):
        await self.http.close()
        await self.server.close()


class AgentClient:
    """A browser of one agent: its own cookie jar, the CSRF token from sign-in."""

    def __init__(self, base: str):
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None
        self.agent: dict | None = None

    async def login(self, email: str, password: str = PASSWORD):
        async with self.http.post(self.base + "/api/inbox/login", json={"email": email, "password": password}) as r:
            data = await r.json()
            if r.status == 200:
                self.csrf, self.agent = data["csrf_token"], data["agent"]
            return r.status, data

    async def get(self, path: str):
        async with self.http.get(self.base + path) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: dict | None = None, csrf: str | None = "default"):
        async with self.http.post(self.base + path, json=body or {}, headers=self._csrf(csrf)) as r:
            return r.status, await r.json()

    async def delete(self, path: str, csrf: str | None = "default"):
        async with self.http.delete(self.base + path, headers=self._csrf(csrf)) as r:
            return r.status, await r.json()

    def _csrf(self, csrf: str | None) -> dict:
        token = self.csrf if csrf == "default" else csrf
        return {"X-CSRF-Token": token} if token is not None else {}

    async def ws(self):
        return await self.http.ws_connect(self.base + f"/api/inbox/ws?csrf={self.csrf}",
                                          headers={"Origin": self.base})

    async def close(self):
        await self.http.close()


async def next_event(ws, type_: str, timeout: float = 10.0, where=lambda e: True) -> dict:
    async def read():
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket closed: {msg}")
            ev = json.loads(msg.data)
            if ev.get("type") == type_ and where(ev):
                return ev
    return await asyncio.wait_for(read(), timeout)


def make_settings(tmp_path, assistant: FakeAssistant, **extra) -> Settings:
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "RASA_URL": assistant.url, "ACTION_SERVER_URL": assistant.url, "RASA_RETRIES": "0",
        "BUSINESS_HOURS": "always", "BUSINESS_TIMEZONE": "Europe/Berlin",
        **extra,
    }
    return Settings.from_env(env)


async def start_gateway(settings: Settings, db_path) -> Gateway:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    return Gateway(server, settings, db_path)


@pytest.fixture
async def gateway(tmp_path, assistant):
    gw = await start_gateway(make_settings(tmp_path, assistant), tmp_path / "gw.db")
    yield gw
    await gw.close()


@pytest.fixture
async def agents(gateway):
    """An admin (Ada) and two agents (Ben, Cleo), signed in."""
    await gateway.add_agent("ada@example.com", "Ada Admin", "admin")
    await gateway.add_agent("ben@example.com", "Ben Agent")
    await gateway.add_agent("cleo@example.com", "Cleo Agent", language="de")
    clients = {}
    for key, email in (("ada", "ada@example.com"), ("ben", "ben@example.com"), ("cleo", "cleo@example.com")):
        c = gateway.agent_client()
        status, _ = await c.login(email)
        assert status == 200
        clients[key] = c
    yield clients
    for c in clients.values():
        await c.close()

"""Hostile input against the gateway's public and signed-in endpoints (hypothesis): malformed and
oversized bodies, invalid UTF-8, huge Unicode, wrong types, forged and replayed signatures, random
calls of every editor route from the OpenAPI document. Every answer is a clear 4xx (JSON with an
"error") or a success, never a 5xx; what was refused left nothing in the database. The counts tried
per endpoint are printed and written to tests/artifacts/fuzz.json."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.cookiejar import CookieJar

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings, strategies as st

from bot.app import create_app
from bot.ops.stack import free_port

from ..conftest import ARTIFACTS
from ..inbox.conftest import PASSWORD, FakeAssistant, make_settings

SECRET = "fuzz-app-secret"
TRIED: Counter = Counter()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
texts = st.text(max_size=300) | st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
                                        min_size=1000, max_size=5000) | st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "../../etc/passwd", "\u202eevil", "\x00", "𝕏" * 4100])


class Server:
    """The real gateway app (and the scripted assistant) on a loop of their own, for sync clients."""

    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.db = tmp_path / "gw.db"
        self.tmp_path = tmp_path
        self.run(self._start())

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        self.fake = FakeAssistant()
        fake_app = web.Application()
        fake_app.router.add_post("/webhooks/rest/webhook", self.fake.webhook)
        fake_app.router.add_get("/webhooks/rest/", self.fake.ok)
        fake_app.router.add_get("/ready", self.fake.ok)
        self.runners = [web.AppRunner(fake_app)]
        await self.runners[0].setup()
        port = free_port()
        await web.TCPSite(self.runners[0], "127.0.0.1", port).start()
        self.fake.url = f"http://127.0.0.1:{port}"
        s = make_settings(self.tmp_path, self.fake, WHATSAPP_VERIFY_TOKEN="v", WHATSAPP_APP_SECRET=SECRET,
                          WHATSAPP_ACCESS_TOKEN="t", WHATSAPP_PHONE_NUMBER_ID="123",
                          WHATSAPP_API_BASE_URL=self.fake.url)
        self.app = create_app(s)
        runner = web.AppRunner(self.app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.runners.append(runner)
        self.url = f"http://127.0.0.1:{port}"
        from bot.staff import accounts
        from bot.keys import SESSIONMAKER

        async with self.app[SESSIONMAKER]() as session:
            await accounts.create_agent(session, "ed@example.com", "Ed Editor", "editor",
                                        accounts.hash_password(PASSWORD), "en")

    def close(self):
        async def stop():
            for r in reversed(self.runners):
                await r.cleanup()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def count(self, table: str) -> int:
        with sqlite3.connect(self.db) as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("fuzz"))
    yield srv
    srv.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps(dict(sorted(TRIED.items())), indent=1))
    print("\nhostile inputs tried per endpoint:", dict(sorted(TRIED.items())), "total", sum(TRIED.values()))


def send(opener, method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


PLAIN = urllib.request.build_opener()


BIG = {b"HUGE": b"x" * 300_000,  # over the 256 KiB body limit
       b"DEEP": b"[" * 100_000}  # nested deeper than any parser's recursion (kept out of hypothesis' repr)


def assert_clear(status: int, body: bytes, where: str):
    assert status < 500, (where, status, body[:300])
    if status >= 400:
        if status in (400, 414, 431) and not body.startswith(b"{"):
            return  # refused by aiohttp's HTTP parser before the app (request line or headers too long)
        assert "error" in json.loads(body), (where, status, body[:300])


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"sender": json_values | texts, "message": json_values | texts},
                                                         optional={"metadata": json_values})))
def test_rest_webhook_json(server, body):
    before = server.count("messages")
    status, raw = send(PLAIN, "POST", server.url + "/webhooks/rest/webhook", json.dumps(body).encode(),
                       {"Content-Type": "application/json"})
    TRIED["POST /webhooks/rest/webhook (json)"] += 1
    assert_clear(status, raw, "rest")
    if status >= 400:
        assert server.count("messages") == before, "a refused message left rows behind"
    else:
        assert server.count("messages") > before


@FUZZ
@given(raw=st.binary(max_size=600) | st.sampled_from([b"\xff\xfe{", b'{"sender": "a", "message": "\xc3\x28"}', b"[" * 5000,
                                                     b"{" + b'"a":' * 100 + b"1", b"HUGE", b"DEEP"]),
       ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_rest_webhook_bytes(server, raw, ctype):
    raw = BIG.get(raw, raw)
    before = server.count("messages")
    status, body = send(PLAIN, "POST", server.url + "/webhooks/rest/webhook", raw,
                        {"Content-Type": ctype} if ctype else {})
    TRIED["POST /webhooks/rest/webhook (bytes)"] += 1
    assert_clear(status, body, "rest-bytes")
    if status >= 400:
        assert server.count("messages") == before


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["sender", "after", "wait", "x"]), texts.filter(lambda t: "\x00" not in t),
                              max_size=3))
def test_rest_poll(server, params):
    q = urllib.parse.urlencode(params)
    status, body = send(PLAIN, "GET", server.url + "/webhooks/rest/messages?" + q)
    TRIED["GET /webhooks/rest/messages"] += 1
    assert_clear(status, body, "poll")


def signed(raw: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


@FUZZ
@given(payload=json_values | st.fixed_dictionaries({"object": st.just("whatsapp_business_account"),
                                                    "entry": st.lists(json_values, max_size=3)}),
       signature=st.sampled_from(["valid", "missing", "forged", "other-body"]))
def test_whatsapp_webhook(server, payload, signature):

    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "valid":
        headers["X-Hub-Signature-256"] = signed(raw)
    elif signature == "forged":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    elif signature == "other-body":  # a replayed signature of another request
        headers["X-Hub-Signature-256"] = signed(b'{"replayed": "from another request"}')
    before = server.count("messages")
    status, body = send(PLAIN, "POST", server.url + "/webhooks/whatsapp/webhook", raw, headers)
    TRIED["POST /webhooks/whatsapp/webhook"] += 1
    assert status < 500, (status, body[:300])
    if signature == "missing":
        assert status == 401
    elif signature in ("forged", "other-body"):
        assert status == 403 and server.count("messages") == before


@pytest.fixture(scope="module")
def editor(server):
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, body = send(opener, "POST", server.url + "/api/inbox/login",
                        json.dumps({"email": "ed@example.com", "password": PASSWORD}).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200
    csrf = json.loads(body)["csrf_token"]
    status, spec = send(PLAIN, "GET", server.url + "/api/openapi.json")
    assert status == 200
    return opener, csrf, json.loads(spec)


def editor_operations(spec: dict) -> list[tuple[str, str]]:
    return sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("get", "post", "put", "delete") and p.startswith("/api/editor"))


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_every_editor_operation(server, editor, data):
    opener, csrf, spec = editor
    method, path = data.draw(st.sampled_from(editor_operations(spec)))
    ids = data.draw(st.sampled_from(["cancel-subscription-en", "no-such-article", "..%2F..%2Fetc", "1", "%00"]))
    url = server.url + re.sub(r"\{(\w+)\}", lambda m: ids if m.group(1) == "id" else "1", path)
    query = data.draw(st.dictionaries(st.sampled_from(["locale", "status", "tag", "q", "format", "from", "to", "limit"]),
                                      st.text(max_size=20).filter(lambda t: "\x00" not in t), max_size=3))
    if query:
        url += "?" + urllib.parse.urlencode(query)
    body = None if method == "GET" else json.dumps(data.draw(json_values)).encode()
    before = server.count("kb_article_versions")
    status, raw = send(opener, method, url, body, {"Content-Type": "application/json", "X-CSRF-Token": csrf})
    TRIED[f"{method} {path}"] += 1
    # this server has no action server, so publishing answers 503 and says so; nothing else may be 5xx
    assert status < 500 or (status == 503 and b"action server" in raw), (method, url, status, raw[:300])
    if 400 <= status < 500:
        assert_clear(status, raw, f"{method} {url}")
        assert server.count("kb_article_versions") == before, "a refused request wrote a version"



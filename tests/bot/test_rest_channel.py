"""The REST channel's contract for bad input and an unreachable assistant, in-process against a real
SQLite database (no Rasa needed: none of these requests may reach it, or it is down on purpose)."""
import json
import sqlite3

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from bot.ops.stack import free_port


@pytest.fixture
async def client(tmp_path):
    dead = free_port()  # nothing listens here: Rasa and the action server are "down"
    settings = Settings.from_env({
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "RASA_URL": f"http://127.0.0.1:{dead}", "ACTION_SERVER_URL": f"http://127.0.0.1:{dead}",
        "RASA_RETRIES": "1", "MAX_MESSAGE_CHARS": "100",
    })
    async with TestClient(TestServer(create_app(settings))) as c:
        c.db_path = tmp_path / "gw.db"
        yield c


URL = "/webhooks/rest/webhook"


@pytest.mark.parametrize("body,status,fragment", [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid UTF-8"),
    (json.dumps([1, 2]).encode(), 400, "must be a JSON object"),
    (json.dumps({"message": "hi"}).encode(), 400, "'sender' is required"),
    (json.dumps({"sender": "", "message": "hi"}).encode(), 400, "'sender' is required"),
    (json.dumps({"sender": "a", "message": 5}).encode(), 400, "'message' is required"),
    (json.dumps({"sender": "a", "message": "   "}).encode(), 400, "'message' is required"),
    (json.dumps({"sender": "a", "message": "x" * 101}).encode(), 413, "at most 100 characters"),
    (json.dumps({"sender": "a" * 256, "message": "hi"}).encode(), 400, "'sender' must be at most 255"),
    (json.dumps({"sender": "a", "message": "hi", "metadata": []}).encode(), 400, "'metadata' must be a JSON object"),
    (json.dumps({"sender": "a", "message": "hi", "metadata": {"message_id": 7}}).encode(), 400, "message_id"),
    (json.dumps({"sender": "a", "message": "hi", "metadata": {"language": ["de"]}}).encode(), 400, "language"),
    (json.dumps({"sender": "a", "message": "hi\x00"}).encode(), 400, "NUL"),
])
async def test_bad_requests_get_a_clear_4xx_and_nothing_is_stored(client, body, status, fragment):
    resp = await client.post(URL, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    payload = await resp.json()
    assert fragment in payload["error"]
    with sqlite3.connect(client.db_path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0


async def test_wrong_content_type_is_415(client):
    resp = await client.post(URL, data="sender=a&message=hi", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert "application/json" in (await resp.json())["error"]


async def test_oversized_body_is_413(client):
    resp = await client.post(URL, data=b"x" * (300 * 1024), headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_when_the_assistant_is_down_the_message_is_kept_and_the_caller_told(client):
    resp = await client.post(URL, json={"sender": "cust-1", "message": "Where is my parcel?"})
    assert resp.status == 503
    body = await resp.json()
    assert "temporarily unavailable" in body["error"] and body["message_id"]
    with sqlite3.connect(client.db_path) as db:
        rows = db.execute("SELECT public_id, text, direction FROM messages").fetchall()
        events = db.execute("SELECT type FROM conversation_events").fetchall()
    assert rows == [(body["message_id"], "Where is my parcel?", "in")]
    assert events == [("assistant_unavailable",)]


async def test_healthz_names_every_component_that_is_not_ready(client):
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert set(body["not_ready"]) == {"rasa", "action_server", "index"}
    assert body["checks"]["database"]["ok"] is True


class SwitchableRasa:
    """Rasa's REST channel: silent (as Rasa is when the action server is down: it logs the failed
    action and answers nothing) or answering."""

    def __init__(self):
        self.silent = True
        self.received: list[str] = []

    async def webhook(self, request):
        from aiohttp import web

        body = await request.json()
        self.received.append(body["message"])
        return web.json_response([] if self.silent else [{"recipient_id": body["sender"], "text": "Here it is."}])

    async def health(self, request):
        from aiohttp import web

        return web.json_response({"status": "ok"})

    async def status(self, request):
        from aiohttp import web

        return web.json_response({"status": "ok", "started_at": 0})


async def _gateway(tmp_path, action_server_up: bool):
    from aiohttp import web

    rasa = SwitchableRasa()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    app.router.add_get("/webhooks/rest/", rasa.health)
    app.router.add_get("/status", rasa.status)  # stands in for the action server's when "up"
    server = TestServer(app)
    await server.start_server()
    actions = str(server.make_url("")).rstrip("/") if action_server_up else f"http://127.0.0.1:{free_port()}"
    settings = Settings.from_env({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
                                  "RASA_URL": str(server.make_url("")).rstrip("/"), "ACTION_SERVER_URL": actions,
                                  "SENTIMENT": "off"})
    return rasa, server, TestClient(TestServer(create_app(settings)))


async def test_silence_while_the_action_server_is_down_is_a_503_and_the_retry_is_answered_once(tmp_path):
    rasa, server, client = await _gateway(tmp_path, action_server_up=False)
    async with client:
        msg = {"sender": "cust-2", "message": "Where is my parcel?", "metadata": {"message_id": "m-1"}}
        resp = await client.post(URL, json=msg)
        assert resp.status == 503 and "temporarily unavailable" in (await resp.json())["error"]
        rasa.silent = False  # the action server is back
        resp = await client.post(URL, json=msg)  # the client retries with the same id
        assert resp.status == 200 and [r["text"] for r in await resp.json()] == ["Here it is."]
        resp = await client.post(URL, json=msg)  # and once more: the stored answer, Rasa is not asked
        assert resp.status == 200 and [r["text"] for r in await resp.json()] == ["Here it is."]
        assert rasa.received == ["Where is my parcel?", "Where is my parcel?"]
        with sqlite3.connect(tmp_path / "gw.db") as db:
            rows = db.execute("SELECT direction, text FROM messages ORDER BY id").fetchall()
        assert rows == [("in", "Where is my parcel?"), ("out", "Here it is.")]
    await server.close()


async def test_silence_while_the_action_server_is_up_is_just_no_reply(tmp_path):
    rasa, server, client = await _gateway(tmp_path, action_server_up=True)
    async with client:
        resp = await client.post(URL, json={"sender": "cust-3", "message": "/skip"})
        assert resp.status == 200 and await resp.json() == []
        with sqlite3.connect(tmp_path / "gw.db") as db:
            assert db.execute("SELECT count(*) FROM conversation_events WHERE type = 'assistant_unavailable'"
                              ).fetchone()[0] == 0
    await server.close()

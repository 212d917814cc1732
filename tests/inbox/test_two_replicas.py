"""Two gateway replicas on one PostgreSQL database (a new one on the machine's server) and the machine's
Redis (a channel prefix of the test's own): the inbox's and the widget's real-time events cross
replicas (bot/fanout.py). A customer's widget is connected to replica B, the agent's inbox to
replica A: the agent sees the hand-off and the customer's messages at once, the customer gets the
agent's reply and typing at once, and nothing is stored twice."""
from __future__ import annotations

import uuid

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.keys import FANOUT, SESSIONMAKER
from bot.store.models import Message

from ..channels.test_webchat_protocol import SITE, until
from ..conftest import require_service
from ..editor.conftest import PG_ADMIN_URL, _pg
from .conftest import make_settings, next_event, start_gateway


@pytest.fixture
def pg_url():
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    with require_service("PostgreSQL", PG_ADMIN_URL):
        _pg(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def redis_url():
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:6379/0"
    with require_service("Redis", "127.0.0.1:6379"):
        r = aioredis.from_url(url, socket_connect_timeout=2)
        await r.ping()
        await r.aclose()
    return url


async def test_inbox_and_widget_events_cross_replicas(tmp_path, assistant, pg_url, redis_url):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix, "WIDGET_ALLOWED_ORIGINS": SITE,
           "SURVEY": "off", "SENTIMENT": "off"}
    a = await start_gateway(make_settings(tmp_path / "a", assistant, **env), None)
    b = await start_gateway(make_settings(tmp_path / "b", assistant, **env), None)
    http = aiohttp.ClientSession()
    try:
        await a.add_agent("ben@example.com", "Ben")
        ben = a.agent_client()
        assert (await ben.login("ben@example.com"))[0] == 200
        inbox = await ben.ws()  # the agent's inbox socket: replica A

        widget = await http.ws_connect(b.url + "/webhooks/webchat/ws", origin=SITE)  # the customer: replica B
        await widget.send_json({"type": "hello", "visitor": "v-" + uuid.uuid4().hex[:12], "language": "en"})
        await until(widget, lambda f: f["type"] == "history")
        await widget.send_json({"type": "message", "id": "m1", "text": "I want a human please"})
        queued = await next_event(inbox, "conversation", where=lambda e: e["conversation"]["status"] == "pending")
        conv = queued["conversation"]["id"]

        assert (await ben.post(f"/api/inbox/conversations/{conv}/claim"))[0] == 200
        await widget.send_json({"type": "message", "id": "m2", "text": "my order is 1234"})
        seen = await next_event(inbox, "message", where=lambda e: e["message"].get("text") == "my order is 1234")
        assert seen["conversation_id"] == conv  # stored by B, shown by A's inbox

        assert (await ben.post(f"/api/inbox/conversations/{conv}/typing", {"on": True}))[0] == 200
        await until(widget, lambda f: f["type"] == "typing" and f.get("by") == "agent" and f["on"] is True)
        assert (await ben.post(f"/api/inbox/conversations/{conv}/reply", {"text": "Let me check order 1234."}))[0] == 201
        frame, _ = await until(widget, lambda f: f["type"] == "message" and f.get("text") == "Let me check order 1234.",
                               timeout=10)
        assert frame["role"] == "agent"

        async with a.app[SESSIONMAKER]() as session:
            texts = (await session.execute(select(Message.text, func.count()).group_by(Message.text))).all()
        assert all(n == 1 for _, n in texts), texts  # nothing stored twice
        assert a.app[FANOUT].received > 0 and b.app[FANOUT].received > 0
        await widget.close()
        await inbox.close()
        await ben.close()
    finally:
        await http.close()
        await a.close()
        await b.close()


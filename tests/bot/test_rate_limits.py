"""Rate limits on the REST channel: per sender and per address, 429 with Retry-After and a clear
message, nothing stored for a refused message; the Redis backend shares the count between two
gateways (the machine's Redis on 6379, under a key prefix of its own)."""
from __future__ import annotations

import uuid

import pytest

from bot.ratelimit import MemoryLimiter, RedisLimiter

from ..conftest import require_service
from ..inbox.conftest import assistant, make_settings, start_gateway  # noqa: F401  (fixtures)


async def count_messages(gw) -> int:
    import sqlite3

    with sqlite3.connect(gw.db_path) as db:
        return db.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]


async def test_a_sender_over_the_limit_gets_429_and_nothing_is_stored(tmp_path, assistant):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, assistant, RATE_LIMIT_SENDER_PER_MINUTE="3"), tmp_path / "gw.db")
    try:
        for i in range(3):
            assert (await gw.ask("chatty", f"question {i}"))[0] == 200
        before = await count_messages(gw)
        async with gw.http.post(gw.url + "/webhooks/rest/webhook", json={"sender": "chatty", "message": "one more"}) as r:
            body = await r.json()
            assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
            assert "too many requests from this sender" in body["error"] and body["retry_after"] >= 1
        assert await count_messages(gw) == before
        assert (await gw.ask("someone-else", "hello"))[0] == 200, "another sender is not affected"
    finally:
        await gw.close()


async def test_an_address_over_the_limit_gets_429_on_the_webhook_and_the_poll(tmp_path, assistant):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, assistant, RATE_LIMIT_IP_PER_MINUTE="4"), tmp_path / "gw.db")
    try:
        statuses = [(await gw.ask(f"s{i}", "hi"))[0] for i in range(4)]
        assert statuses == [200] * 4
        assert (await gw.ask("s5", "hi"))[0] == 429
        assert (await gw.poll("s1"))[0] == 429
    finally:
        await gw.close()


async def test_the_memory_limiter_counts_per_window():
    lim = MemoryLimiter()
    assert [await lim.hit("k", "a", 2, now=120.0) for _ in range(3)] == [None, None, 60.0]
    assert await lim.hit("k", "a", 2, now=180.5) is None, "a new minute starts a new count"
    assert await lim.hit("k", "a", 0, now=180.5) is None, "0 means no limit"


async def test_the_redis_limiter_is_shared_and_fails_open():
    a, b = RedisLimiter("redis://127.0.0.1:6379/0"), RedisLimiter("redis://127.0.0.1:6379/0")
    key = uuid.uuid4().hex
    try:
        with require_service("Redis", "127.0.0.1:6379"):
            await a._redis.ping()
        assert await a.hit("t", key, 3, now=600.0) is None
        assert await b.hit("t", key, 3, now=600.0) is None
        assert await a.hit("t", key, 3, now=600.0) is None
        assert await b.hit("t", key, 3, now=610.0) == 50.0, "the fourth hit, on the other replica, is refused"
    finally:
        await a.close()
        await b.close()
    down = RedisLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        assert await down.hit("t", key, 1) is None and await down.hit("t", key, 1) is None
    finally:
        await down.close()

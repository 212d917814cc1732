"""Rate limits on the REST channel: per sender and per address, 429 with Retry-After and a clear
message, nothing stored for a refused message, a new minute starts a new count; the Redis backend
shares the count between two gateways (the machine's Redis on 6379, under a key prefix of its own).
The limiters' clock is stepped by the tests: a test never races the minute's end."""
from __future__ import annotations

import uuid

from bot.ratelimit import LIMITER, MemoryLimiter, RedisLimiter

from ..conftest import SteppedClock, require_service
from ..inbox.conftest import assistant, make_settings, start_gateway  # noqa: F401  (fixtures)

A_MINUTE_STARTS = 1_800_000_000.0  # an epoch second at the start of a minute


async def count_messages(gw) -> int:
    import sqlite3

    with sqlite3.connect(gw.db_path) as db:
        return db.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]


async def test_a_sender_over_the_limit_gets_429_and_nothing_is_stored(tmp_path, assistant):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, assistant, RATE_LIMIT_SENDER_PER_MINUTE="3"), tmp_path / "gw.db")
    clock = gw.app[LIMITER].clock = SteppedClock(A_MINUTE_STARTS + 20)
    try:
        for i in range(3):
            assert (await gw.ask("chatty", f"question {i}"))[0] == 200
        before = await count_messages(gw)
        async with gw.http.post(gw.url + "/webhooks/rest/webhook", json={"sender": "chatty", "message": "one more"}) as r:
            body = await r.json()
            assert r.status == 429 and r.headers["Retry-After"] == "40"  # the minute's 40 s left
            assert body == {"error": "too many requests from this sender; try again in 40 s", "retry_after": 40}
        assert await count_messages(gw) == before
        assert (await gw.ask("someone-else", "hello"))[0] == 200, "another sender is not affected"
        clock.step(40)  # the next minute
        assert (await gw.ask("chatty", "and now?"))[0] == 200
        assert await count_messages(gw) == before + 2
    finally:
        await gw.close()


async def test_an_address_over_the_limit_gets_429_on_the_webhook_and_the_poll(tmp_path, assistant):  # noqa: F811
    gw = await start_gateway(make_settings(tmp_path, assistant, RATE_LIMIT_IP_PER_MINUTE="4"), tmp_path / "gw.db")
    gw.app[LIMITER].clock = SteppedClock(A_MINUTE_STARTS + 59)
    try:
        statuses = [(await gw.ask(f"s{i}", "hi"))[0] for i in range(4)]
        assert statuses == [200] * 4
        assert (await gw.ask("s5", "hi"))[0] == 429
        assert (await gw.poll("s1"))[0] == 429
    finally:
        await gw.close()


async def test_the_memory_limiter_counts_per_window():
    clock = SteppedClock(120.0)
    lim = MemoryLimiter(clock)
    assert [await lim.hit("k", "a", 2) for _ in range(3)] == [None, None, 60.0]
    assert await lim.hit("k", "b", 2) is None, "another key has its own count"
    clock.step(75)  # 15 s into the next minute
    assert [await lim.hit("k", "a", 2) for _ in range(3)] == [None, None, 45.0], "a new minute starts a new count"
    assert await lim.hit("k", "a", 0) is None, "0 means no limit"


async def test_the_redis_limiter_is_shared_and_fails_open():
    clock = SteppedClock(600.0)
    a, b = RedisLimiter("redis://127.0.0.1:6379/0", clock=clock), RedisLimiter("redis://127.0.0.1:6379/0", clock=clock)
    key = uuid.uuid4().hex
    try:
        with require_service("Redis", "127.0.0.1:6379"):
            await a._redis.ping()
        assert await a.hit("t", key, 3) is None
        assert await b.hit("t", key, 3) is None
        assert await a.hit("t", key, 3) is None
        clock.step(10)
        assert await b.hit("t", key, 3) == 50.0, "the fourth hit, on the other replica, is refused"
        clock.step(50)
        assert await a.hit("t", key, 3) is None, "a new minute starts a new count on both"
    finally:
        await a.close()
        await b.close()
    down = RedisLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        assert await down.hit("t", key, 1) is None and await down.hit("t", key, 1) is None
    finally:
        await down.close()

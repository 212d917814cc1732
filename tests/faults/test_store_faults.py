"""Faults of the shared services during traffic, on private PostgreSQL and Redis servers (conftest.py):

- PostgreSQL stopped and started again while a customer keeps writing: every request is answered 200
  or a clear 503 with Retry-After (never a 500); the refused ones, resent with the same message_id after
  the restart, are stored; in the end every message is stored exactly once and answered.
- PostgreSQL killed (immediate shutdown, as a crash) and started again under load, six customers
  sending back to back: the same, every message stored once and answered after the customers' retries.
- Redis killed and started again under two gateway replicas while eight customers send back to back:
  every message is answered at once and stored once (the rate limiter lets requests through, the
  fan-out logs the outage), and once Redis is back the replicas'
  real-time events cross again without a restart."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg

from bot.keys import FANOUT

from ..conftest import wait_until
from ..inbox.conftest import assistant, make_settings, next_event, start_gateway  # noqa: F401  (fixture)


async def test_a_postgres_outage_is_a_clear_503_and_loses_or_doubles_nothing(tmp_path, assistant, private_postgres):
    gw = await start_gateway(make_settings(tmp_path, assistant, DATABASE_URL=private_postgres.url(),
                                           SENTIMENT="off", RATE_LIMIT_SENDER_PER_MINUTE="0"), None)
    try:
        ids = [uuid.uuid4().hex for _ in range(24)]

        async def send(i: int):
            body = {"sender": "fault-customer", "message": f"question {i}", "metadata": {"message_id": ids[i]}}
            async with gw.http.post(gw.url + "/webhooks/rest/webhook", json=body) as r:
                return r.status, await r.json(), r.headers.get("Retry-After")

        results = {}
        for i in range(24):
            if i == 8:
                await asyncio.to_thread(private_postgres.stop, "fast")
            if i == 16:
                await asyncio.to_thread(private_postgres.start)
            results[i] = await send(i)
        statuses = [results[i][0] for i in range(24)]
        assert set(statuses) <= {200, 503}, statuses
        refused = [i for i in range(24) if results[i][0] == 503]
        assert refused and all(8 <= i < 17 for i in refused), statuses  # refused only around the outage
        for i in refused:
            assert "conversation store is unavailable" in results[i][1]["error"] and results[i][2] == "5"
        for i in refused:  # the customer's client resends with the same message_id
            status, replies, _ = await send(i)
            assert status == 200 and replies[0]["text"] == f"bot: question {i}"
        conn = await asyncpg.connect(private_postgres.url(driver="postgresql"))
        try:
            rows = await conn.fetch("SELECT text, count(*) AS n FROM messages WHERE direction = 'in' GROUP BY text")
            answers = await conn.fetch("SELECT text FROM messages WHERE direction = 'out' AND sender_type = 'bot'")
        finally:
            await conn.close()
        assert sorted(r["text"] for r in rows) == sorted(f"question {i}" for i in range(24))
        assert all(r["n"] == 1 for r in rows)  # none lost, none doubled
        assert sorted(r["text"] for r in answers) == sorted(f"bot: question {i}" for i in range(24))  # each once
    finally:
        await gw.close()


async def test_postgres_crashing_under_load_loses_or_doubles_nothing(tmp_path, assistant, private_postgres):
    gw = await start_gateway(make_settings(tmp_path, assistant, DATABASE_URL=private_postgres.url(),
                                           SENTIMENT="off", RATE_LIMIT_SENDER_PER_MINUTE="0"), None)
    try:
        statuses: list[int] = []
        sent: list[str] = []
        answered_by, refused_by = [0] * 6, [0] * 6
        recovered = asyncio.Event()

        async def customer(c: int):
            k, after = 0, 0
            while after < 3:  # until the database is back, then three more
                k += 1
                after += recovered.is_set()
                mid, text = uuid.uuid4().hex, f"customer {c} question {k}"
                body = {"sender": f"load-{c}", "message": text, "metadata": {"message_id": mid}}
                for _ in range(120):  # a client retries a 503 with the same message_id
                    try:
                        async with gw.http.post(gw.url + "/webhooks/rest/webhook", json=body) as r:
                            statuses.append(r.status)
                            payload = await r.json()
                    except Exception as exc:  # noqa: BLE001 - recorded: the gateway must answer
                        statuses.append(-1)
                        raise AssertionError(f"no answer: {exc}") from exc
                    if r.status == 200:
                        assert payload and payload[0]["text"] == f"bot: {text}", payload
                        sent.append(text)
                        answered_by[c] += 1
                        break
                    assert r.status == 503 and r.headers.get("Retry-After") == "5", (r.status, payload)
                    refused_by[c] += 1
                    await asyncio.sleep(0.25)  # the client's pause before resending
                else:
                    raise AssertionError(f"{text} never answered")

        async def crash():  # under load (every customer answered twice); up again once each was refused
            await wait_until(lambda: min(answered_by) >= 2, what="every customer to be answered twice")
            await asyncio.to_thread(private_postgres.stop, "immediate")
            await wait_until(lambda: min(refused_by) >= 1, what="every customer to be refused while it is down")
            await asyncio.to_thread(private_postgres.start)
            recovered.set()

        await asyncio.gather(crash(), *(customer(c) for c in range(6)))
        assert set(statuses) == {200, 503}, sorted(set(statuses))
        conn = await asyncpg.connect(private_postgres.url(driver="postgresql"))
        try:
            rows = await conn.fetch("SELECT text, count(*) AS n FROM messages WHERE direction = 'in' GROUP BY text")
        finally:
            await conn.close()
        # each customer: two before the crash, the one refused during it, three after
        assert sorted(r["text"] for r in rows) == sorted(sent) and len(sent) >= 6 * 6
        assert all(r["n"] == 1 for r in rows)  # none lost, none doubled
    finally:
        await gw.close()


async def test_a_redis_outage_keeps_customers_answered_and_the_fanout_recovers(tmp_path, assistant,
                                                                                private_postgres, private_redis):
    env = {"DATABASE_URL": private_postgres.url(), "REDIS_URL": private_redis.url, "SENTIMENT": "off", "SURVEY": "off",
           "RATE_LIMIT_SENDER_PER_MINUTE": "1000"}  # counted in Redis while it is up
    a = await start_gateway(make_settings(tmp_path / "a", assistant, **env), None)
    b = await start_gateway(make_settings(tmp_path / "b", assistant, **env), None)
    try:
        await a.add_agent("ben@example.com", "Ben")
        ben = a.agent_client()
        assert (await ben.login("ben@example.com"))[0] == 200
        inbox = await ben.ws()  # on replica A
        await b.ask("before", "human please (before)")  # handled by replica B
        await next_event(inbox, "conversation", where=lambda e: "before" in str(e))

        # Load on both replicas, four customers each sending back to back; Redis is killed after 0.4 s
        # and started again 1.5 s later: every message is answered at once throughout.
        answered: list[str] = []
        statuses: list[int] = []
        answered_by = [0] * 8
        back = asyncio.Event()

        async def customer(gw, c: int):
            k, after = 0, 0
            while after < 3:
                k += 1
                after += back.is_set()
                text = f"where is my parcel {c}-{k}"
                status, replies = await gw.ask(f"during-{c}", text, message_id=uuid.uuid4().hex)
                statuses.append(status)
                assert status == 200 and replies[0]["text"] == f"bot: {text}", (status, replies)
                answered.append(text)
                answered_by[c] += 1

        async def outage():  # under load; up again once every customer was answered while it was down
            await wait_until(lambda: min(answered_by) >= 1, what="every customer to be answered")
            await asyncio.to_thread(private_redis.stop)
            down = list(answered_by)  # (the second answer after this one was asked while Redis was down)
            await wait_until(lambda: all(n >= d + 2 for n, d in zip(answered_by, down)),
                             what="every customer to be answered while Redis is down")
            await asyncio.to_thread(private_redis.start)  # the same port: the fan-out resubscribes on its own
            back.set()

        await asyncio.gather(outage(), *(customer(a if c % 2 else b, c) for c in range(8)))
        # each customer: one before the outage, two during it, three after
        assert set(statuses) == {200} and len(answered) >= 8 * 6
        conn = await asyncpg.connect(private_postgres.url(driver="postgresql"))
        try:
            rows = await conn.fetch("SELECT text, count(*) AS n FROM messages WHERE direction = 'in' "
                                    "AND text LIKE 'where is my parcel %' GROUP BY text")
        finally:
            await conn.close()
        assert sorted(r["text"] for r in rows) == sorted(answered) and all(r["n"] == 1 for r in rows)

        fanout_a, fanout_b = a.app[FANOUT], b.app[FANOUT]
        await asyncio.wait_for(asyncio.gather(fanout_a.ready.wait(), fanout_b.ready.wait()), 20)
        await b.ask("after", "human please (after)")
        await next_event(inbox, "conversation", timeout=15, where=lambda e: "after" in str(e))
        await inbox.close()
        await ben.close()
    finally:
        await a.close()
        await b.close()

"""The WhatsApp channel against the parts of Meta's Cloud API contract that break in production when
they are got wrong (issue 17), in-process like test_whatsapp_channel.py: the real gateway, SQLite, the
simulator as Meta, a scripted Rasa. Rate-limit waits are scaled down (module constants); the policy
(4^X, pacing, giving up) is what is checked, not speed."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import update

from bot import keys
from bot.insights import privacy
from bot.channels import whatsapp, whatsapp_send
from bot.channels.whatsapp_render import split_text
from bot.messages import Recipient, Reply
from bot.store.models import Conversation
from tests.whatsapp_sim import meta_json, sign

from .test_whatsapp_channel import sent_texts, wa, wait_until, whatsapp_gateway


@pytest.fixture
async def gw(tmp_path):
    async with whatsapp_gateway(tmp_path) as gateway:
        yield gateway


def conversation_of(gw, user: str):
    with gw.db() as db:
        return db.execute("SELECT c.public_id, c.language, c.status FROM conversations c JOIN contact_identities i "
                          "ON i.contact_id = c.contact_id WHERE i.source_id = ?", (user,)).fetchone()


def scaled_rate_limits(monkeypatch, unit: float = 0.02, pair_rate: float = 0.5) -> None:
    """Meta's 4^X seconds become 4^X * unit, its 6 s between messages to one customer pair_rate."""
    monkeypatch.setattr(whatsapp_send, "RATE_LIMIT_BACKOFF_SECONDS", unit, raising=False)
    monkeypatch.setattr(whatsapp_send, "PAIR_RATE_SECONDS", pair_rate, raising=False)


def times_of(sim, user: str) -> list[tuple[int, float]]:
    return [(r["status"], r["at"]) for r in sim.requests_to(user)]


def count(gw, sql: str) -> int:
    with gw.db() as db:
        return db.execute(sql).fetchone()[0]


# --- reply ids ------------------------------------------------------------------------------------

async def test_two_buttons_with_the_same_payload_are_sent_and_the_second_maps_back(gw):
    user = wa()
    gw.rasa.scripted["Was that clear?"] = [{"text": "Was that clear?", "buttons": [
        {"title": "Yes", "payload": "/affirm"}, {"title": "Sure", "payload": "/affirm"},
        {"title": "No", "payload": "/deny"}]}]
    await gw.sim.send_text(user, "Was that clear?")
    await wait_until(lambda: gw.sim.messages_to(user), what="the buttons accepted by Meta")
    question = gw.sim.messages_to(user)[0]
    sure = question["payload"]["interactive"]["action"]["buttons"][1]["reply"]
    assert sure["title"] == "Sure" and sure["id"] != "/affirm"
    await gw.sim.press_button(user, sure["id"], sure["title"], context=question["id"])
    await wait_until(lambda: gw.rasa.messages_from("/affirm"), what="/affirm at Rasa")
    assert gw.rows(user, "out")[0]["delivery_status"] in ("sent", "delivered")


# --- batched webhooks -----------------------------------------------------------------------------

def batch_of(gw, customers: int, outbound: list[str]) -> tuple[list[str], bytes]:
    """One POST as Meta batches it: a message from each of ``customers`` new customers (German, with
    umlauts) and "delivered" and "read" for each ``outbound`` message, escaped and signed like Meta's."""
    notes, wamids = [], []
    for i in range(customers):
        wamid, note = gw.sim.message_notification(f"4917{i:09d}", {"type": "text", "text": {
            "body": f"Frage {i}: Wo ist mein Paket? Ich habe es vor einer Woche bestellt. Grüße"}}, name=f"Kundin {i}")
        notes.append(note)
        wamids.append(wamid)
    notes += [gw.sim.status_notification(w, s) for w in outbound for s in ("delivered", "read")]
    return wamids, meta_json(gw.sim.batch(notes, one_value=True))


@pytest.mark.slow
async def test_a_batch_of_1000_updates_gets_its_200_before_it_is_stored_and_survives_a_restart(tmp_path, monkeypatch):
    async with whatsapp_gateway(tmp_path) as gw:
        first = [wa() for _ in range(5)]
        for user in first:
            gw.sim.user(user).auto_statuses = ()
            await gw.sim.send_text(user, "Where is my parcel?")
        await wait_until(lambda: all(len(gw.sim.messages_to(u)) == 2 for u in first), what="ten replies")
        outbound = [m["id"] for u in first for m in gw.sim.messages_to(u)]
        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_schedule", lambda self, mid: None)  # not answered here
        gate = asyncio.Event()
        original = getattr(whatsapp.WhatsAppChannel, "_process_batch", None)

        async def gated(self, batch_id):
            await gate.wait()
            await original(self, batch_id)

        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_process_batch", gated, raising=False)
        monkeypatch.setattr(whatsapp, "STOP_TIMEOUT_SECONDS", 0.5)
        wamids, raw = batch_of(gw, 1000 - 2 * len(outbound), outbound)
        assert len(raw) > 256 * 1024  # over the gateway's limit for every other route
        status, _ = await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw), timeout=60)
        assert status == 200  # answered while nothing of it is stored yet
        assert count(gw, "SELECT count(*) FROM messages WHERE direction = 'in'") == 5
        assert count(gw, "SELECT count(*) FROM inbound_batches") == 1
        await gw.stop()  # before the batch could be split: it is kept
        gate.set()
        await gw.start()  # ... and split at the next start
        await wait_until(lambda: count(gw, "SELECT count(*) FROM inbound_batches") == 0, timeout=180,
                         what="the batch to be stored")
        with gw.db() as db:
            stored = {r[0]: r[1] for r in db.execute("SELECT platform_message_id, text FROM messages "
                                                     "WHERE direction = 'in'")}
        assert count(gw, "SELECT count(*) FROM messages WHERE direction = 'out' AND delivery_status = 'read'") \
            == len(outbound)
        assert all(w in stored for w in wamids) and len(stored) == len(wamids) + 5
        assert stored[wamids[-1]].endswith("vor einer Woche bestellt. Grüße")
        assert (await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw)))[0] == 200  # Meta retries it
        await asyncio.sleep(1.0)
        assert count(gw, "SELECT count(*) FROM messages WHERE direction = 'in'") == len(stored)


async def test_deleting_a_contact_takes_its_updates_out_of_a_batch_still_waiting(tmp_path, monkeypatch):
    async with whatsapp_gateway(tmp_path) as gw:
        gone, stays = wa(), wa()
        await gw.sim.send_text(gone, "Where is my parcel?", name="Gone")
        await wait_until(lambda: len(gw.sim.messages_to(gone)) == 2, what="two replies")
        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_schedule", lambda self, mid: None)  # not answered here
        gate, original = asyncio.Event(), whatsapp.WhatsAppChannel._process_batch

        async def gated(self, batch_id):
            await gate.wait()
            await original(self, batch_id)

        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_process_batch", gated)
        notes = [gw.sim.message_notification(user, {"type": "text", "text": {"body": f"Meine Adresse: Hauptstraße {i}"}},
                                             name=f"Kunde {i}")[1] for i, user in enumerate([gone, stays] * 3)]
        outbound = [m["id"] for m in gw.sim.messages_to(gone)]
        notes += [gw.sim.status_notification(w, "read") for w in outbound]
        raw = meta_json(gw.sim.batch(notes, one_value=True))
        assert (await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw)))[0] == 200
        assert count(gw, "SELECT count(*) FROM inbound_batches") == 1  # waiting, not yet stored
        async with gw.app[keys.SESSIONMAKER]() as session:  # what DELETE /api/admin/contacts/{id} does
            contact = await privacy.find_contact(session, f"whatsapp:{gone}")
            out = await privacy.delete_contact(session, contact, gw.settings.rasa_tracker_store_url)
        assert out["pending_whatsapp_updates"] == 3 + len(outbound)
        with gw.db() as db:
            body = db.execute("SELECT body FROM inbound_batches").fetchone()[0]
        assert gone not in body and body.count(stays) >= 3
        gate.set()
        await wait_until(lambda: count(gw, "SELECT count(*) FROM inbound_batches") == 0, what="the batch stored")
        assert count(gw, f"SELECT count(*) FROM contact_identities WHERE source_id = '{gone}'") == 0
        assert count(gw, "SELECT count(*) FROM messages WHERE text LIKE 'Meine Adresse%'") == 3
        assert [r["text"] for r in gw.rows(stays, "in")] == [f"Meine Adresse: Hauptstraße {i}" for i in (1, 3, 5)]


async def test_what_a_deleted_contact_sent_before_the_deletion_is_not_stored_when_it_arrives_after(tmp_path,
                                                                                                    monkeypatch):
    """A batch already split when the contact is deleted (nothing left to scrub), and Meta delivering an
    old message again: neither brings the customer back. A message written after the deletion is a new
    customer's and is stored."""
    async with whatsapp_gateway(tmp_path) as gw:
        gone, stays = wa(), wa()
        await gw.sim.send_text(gone, "Where is my parcel?", name="Gone")
        await wait_until(lambda: len(gw.sim.messages_to(gone)) == 2, what="two replies")
        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_schedule", lambda self, mid: None)  # not answered here
        split, gate, original = asyncio.Event(), asyncio.Event(), whatsapp.WhatsAppChannel._store_updates

        async def gated(self, messages, statuses):
            if len(messages) > whatsapp.INLINE_UPDATES:  # the batch, parsed: in memory, out of reach of the scrub
                split.set()
                await gate.wait()
            await original(self, messages, statuses)

        monkeypatch.setattr(whatsapp.WhatsAppChannel, "_store_updates", gated)
        sent_at = time.time() - 5
        notes = [gw.sim.message_notification(user, {"type": "text", "text": {"body": f"Meine Adresse: Hauptstraße {i}"}},
                                             name=f"Kunde {i}", timestamp=sent_at)[1]
                 for i, user in enumerate([gone, stays] * 3)]
        raw = meta_json(gw.sim.batch(notes, one_value=True))
        assert (await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw)))[0] == 200
        await asyncio.wait_for(split.wait(), 30)
        async with gw.app[keys.SESSIONMAKER]() as session:  # what DELETE /api/admin/contacts/{id} does
            contact = await privacy.find_contact(session, f"whatsapp:{gone}")
            out = await privacy.delete_contact(session, contact, gw.settings.rasa_tracker_store_url,
                                               privacy.erasure_key_of(gw.settings))
        assert out["erased_whatsapp_ids"] == 1
        with gw.db() as db:
            assert gone not in db.execute("SELECT digest FROM erasures").fetchone()[0]  # a keyed hash, not the number
        gate.set()
        await wait_until(lambda: count(gw, "SELECT count(*) FROM inbound_batches") == 0, what="the batch stored")
        assert [r["text"] for r in gw.rows(stays, "in")] == [f"Meine Adresse: Hauptstraße {i}" for i in (1, 3, 5)]
        assert count(gw, f"SELECT count(*) FROM contact_identities WHERE source_id = '{gone}'") == 0
        assert count(gw, "SELECT count(*) FROM messages WHERE text LIKE 'Meine Adresse%'") == 3
        # Meta delivers the customer's old message again (a small notification, stored at once): dropped
        await gw.sim.send_text(gone, "Meine Adresse: Hauptstraße 0", timestamp=sent_at)  # handled before the 200
        assert count(gw, f"SELECT count(*) FROM contact_identities WHERE source_id = '{gone}'") == 0
        assert count(gw, "SELECT count(*) FROM messages WHERE text LIKE 'Meine Adresse%'") == 3
        # the same number writing after the deletion is a new customer
        await gw.sim.send_text(gone, "Hallo, ich bin neu hier", timestamp=time.time() + 2)
        await wait_until(lambda: [r["text"] for r in gw.rows(gone, "in")] == ["Hallo, ich bin neu hier"],
                         what="the new customer's message")


async def test_the_webhook_has_its_own_body_limit_checked_before_anything_is_stored(tmp_path):
    async with whatsapp_gateway(tmp_path, whatsapp={"webhook_max_bytes": 100 * 1024}) as gw:
        wamids, raw = batch_of(gw, 400, [])
        assert len(raw) > 100 * 1024
        assert (await gw.sim.deliver(raw, signature=sign(gw.sim.app_secret, raw)))[0] == 413
        assert (await gw.sim.deliver(raw, signature="sha256=" + "0" * 64))[0] == 413  # the size first
        _, small = batch_of(gw, 40, [])
        assert (await gw.sim.deliver(small, signature="sha256=" + "0" * 64))[0] == 403
        assert (await gw.sim.deliver(small, signature=sign(gw.sim.app_secret, small)))[0] == 200
        await wait_until(lambda: count(gw, "SELECT count(*) FROM messages WHERE direction = 'in'") == 40,
                         what="the small batch")
        assert not gw.rows(f"4917{399:09d}", "in")


# --- ids ------------------------------------------------------------------------------------------

async def test_a_customer_known_by_a_131_character_business_scoped_id_is_answered(gw):
    bsuid = "DE." + "9" * 128
    await gw.sim.send_text(None, "Hallo, wo ist mein Paket?", user_id=bsuid, name="Username only")
    await wait_until(lambda: len(gw.sim.messages_to(bsuid)) == 2, what="the answer")
    assert gw.sim.messages_to(bsuid)[0]["payload"]["recipient"] == bsuid


# --- rate limits ----------------------------------------------------------------------------------

async def test_the_pair_rate_limit_is_retried_after_4_to_the_x_and_the_next_message_waits(gw, monkeypatch):
    scaled_rate_limits(monkeypatch)
    user = wa()
    gw.sim.fail_next(4, "pair_rate_limit")  # the old policy gave up after 4 tries
    await gw.sim.send_text(user, "Slow down")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, timeout=30, what="both replies")
    attempts = times_of(gw.sim, user)
    assert [s for s, _ in attempts] == [400, 400, 400, 400, 200, 200]
    gaps = [b - a for (_, a), (_, b) in zip(attempts, attempts[1:])]
    assert all(gaps[x] >= 0.02 * 4 ** x for x in range(4)), gaps  # 4^X: 1, 4, 16, 64 units
    assert gaps[4] >= 0.5, gaps  # then one message per pair rate interval, not a burst
    first = gw.rows(user, "out")[0]
    assert first["delivery_status"] in ("sent", "delivered") and '"attempts": 5' in first["meta"]


async def test_throughput_limits_are_waited_out_beyond_four_tries(gw, monkeypatch):
    scaled_rate_limits(monkeypatch)
    user = wa()
    gw.sim.fail_next(6, "429")
    await gw.sim.send_text(user, "Busy?")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, timeout=30, what="both replies")
    assert [s for s, _ in times_of(gw.sim, user)] == [429] * 6 + [200, 200]
    assert all(r["delivery_status"] in ("sent", "delivered") for r in gw.rows(user, "out"))


async def test_a_long_split_answer_is_not_failed_while_meta_refuses_one_part_for_a_while(gw, monkeypatch):
    scaled_rate_limits(monkeypatch, pair_rate=0.05)
    user = wa()
    long = "\n\n".join(f"Paragraph {i}. " + "This sentence explains the refund policy in detail. " * 30
                       for i in range(6))  # ~9,500 characters: three parts
    gw.rasa.scripted["Tell me everything"] = [{"text": long}]
    gw.sim.fail_next(5, "pair_rate_limit", match=lambda body: body.get("biz_opaque_callback_data", "").endswith(":1"))
    await gw.sim.send_text(user, "Tell me everything")
    await wait_until(lambda: gw.rows(user, "in")[0]["delivery_status"] == "processed", timeout=30)
    assert [s for s, _ in times_of(gw.sim, user)] == [200] + [400] * 5 + [200, 200]
    assert sent_texts(gw.sim, user) == split_text(long) and len(split_text(long)) == 3  # all, in order
    [row] = gw.rows(user, "out")
    meta = json.loads(row["meta"])
    assert row["delivery_status"] in ("sent", "delivered") and len(meta["wa_parts"]) == 3 and "error" not in meta


async def test_a_rate_limit_that_outlasts_the_retry_time_marks_the_message_failed(tmp_path, monkeypatch):
    scaled_rate_limits(monkeypatch)
    async with whatsapp_gateway(tmp_path, whatsapp={"rate_limit_retry_seconds": 0.5}) as gw:
        user = wa()
        gw.sim.fail_next(20, "pair_rate_limit")
        await gw.sim.send_text(user, "Never?")
        await wait_until(lambda: gw.rows(user, "in")[0]["delivery_status"] == "processed", timeout=30)
        first = gw.rows(user, "out")[0]
        assert first["delivery_status"] == "failed" and '"error": "pair_rate_limited"' in first["meta"]
        assert 3 <= len(gw.sim.requests_to(user)) < 20  # 1 + 4 + 16 units fit in the time, 64 do not


# --- read receipts and the 24-hour window ---------------------------------------------------------

async def test_no_read_receipt_or_typing_indicator_in_a_conversation_a_person_has(gw):
    user = wa()
    first, _ = await gw.sim.send_text(user, "I need a person")
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2)
    assert gw.sim.reads_of(first)  # the bot answered: blue ticks and "typing..."
    async with gw.app[keys.SESSIONMAKER]() as session:
        await session.execute(update(Conversation).where(Conversation.public_id == conversation_of(gw, user)[0])
                              .values(status="pending"))
        await session.commit()
    second, _ = await gw.sim.send_text(user, "Hello? Anyone?")
    await wait_until(lambda: gw.rows(user, "in")[-1]["delivery_status"] == "processed", what="the second message")
    await asyncio.sleep(0.3)
    assert gw.sim.reads_of(second) == [] and len(gw.sim.messages_to(user)) == 2


async def test_a_reaction_opens_the_24_hour_window_without_an_answer(gw):
    user = wa()
    await gw.sim.send_text(user, "Where is my parcel?", timestamp=time.time() - 25 * 3600)
    await wait_until(lambda: gw.rows(user, "in") and gw.rows(user, "in")[0]["delivery_status"] == "processed")
    conv = conversation_of(gw, user)
    refused = await gw.channel.deliver(Recipient(conv[0], user), [Reply("Hi, this is Sam.")])
    assert refused.error == "outside_24h_window"
    await gw.sim.react(user, "wamid.of-an-earlier-answer", "👍")
    await asyncio.sleep(0.3)
    assert len(gw.rows(user, "in")) == 1 and gw.sim.messages_to(user) == []  # not a message, not answered
    ok = await gw.channel.deliver(Recipient(conv[0], user), [Reply("Hi, this is Sam from support.")])
    assert ok.delivered and sent_texts(gw.sim, user) == ["Hi, this is Sam from support."]


async def test_131047_in_a_failed_status_closes_the_window_until_the_customer_writes(gw):
    user = wa()
    u = gw.sim.user(user)
    # Meta's clock says the window closed: it accepts sends, then fails them in a status
    u.reengagement_via, u.auto_statuses, u.window_closed = "status", (), True
    await gw.sim.send_text(user, "Where is my parcel?", timestamp=time.time() - 3600)
    await wait_until(lambda: gw.rows(user, "in")[0]["delivery_status"] == "processed")
    await wait_until(lambda: all(r["delivery_status"] == "failed" for r in gw.rows(user, "out")), what="131047")
    assert all('"error": "outside_24h_window"' in r["meta"] and "131047" in r["meta"] for r in gw.rows(user, "out"))
    calls = len(gw.sim.requests_to(user))
    refused = await gw.channel.deliver(Recipient(conversation_of(gw, user)[0], user), [Reply("Hi, this is Sam.")])
    assert not refused.delivered and refused.error == "outside_24h_window"
    assert len(gw.sim.requests_to(user)) == calls  # not sent into a closed window
    u.window_closed = False
    await gw.sim.send_text(user, "Hello again")  # the customer writes: the window is open again
    await wait_until(lambda: len(gw.sim.messages_to(user)) == 2, what="the answer")

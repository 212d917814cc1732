"""Hand-off and the agent inbox through the real stack (Rasa trained on the real data, the action
server with the real index) and a real browser (Debian's Chromium driven by Playwright): a customer
is handed off by the bot, an agent signs in at /inbox, sees the summary, claims, replies; the
customer receives it; the bot stays silent until it is handed back; a gateway restart in the middle
loses nothing. Screenshots go to tests/artifacts/."""
from __future__ import annotations

import re
import uuid

import pytest

from actions.texts import response_text
from bot.i18n import t

from ..conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_executable, playwright_api
from .stack_helpers import PASSWORD, InboxGateway

pytestmark = pytest.mark.stack

ASK = {
    "en": "I want to talk to a person",
    "de": "Ich möchte mit einem Mitarbeiter sprechen",
    "tr": "bir müşteri temsilcisiyle görüşmek istiyorum",
    "ja": "オペレーターと話したいです",
}


@pytest.fixture(scope="module")
def inbox_gateway(running_stack, tmp_path_factory):
    gw = InboxGateway(running_stack, tmp_path_factory.mktemp("inbox"))
    gw.start()
    gw.add_agent("ada@example.com", "Ada Admin", "admin")
    gw.add_agent("jonas@example.com", "Jonas Weber", "agent", language="de")
    try:
        yield gw
    finally:
        gw.stop()


def sender() -> str:
    return f"inbox-{uuid.uuid4().hex[:8]}"


def hand_off(gw: InboxGateway, s: str, lang: str) -> list[dict]:
    """The real bot's hand-off form, skipping name and email."""
    _, r = gw.ask(s, ASK[lang])
    assert any(x.get("buttons") for x in r), r
    gw.ask(s, "/skip")
    status, r = gw.ask(s, "/skip")
    assert status == 200
    return r


@pytest.mark.parametrize("lang", list(ASK))
def test_the_real_bot_hands_off_and_the_customer_hears_their_place_in_the_queue(inbox_gateway, lang):
    gw = inbox_gateway
    s = sender()
    ahead = gw.pending_count()
    replies = hand_off(gw, s, lang)
    texts = [x.get("text") or "" for x in replies]
    assert texts[0].startswith(response_text("utter_handoff", lang).split("{")[0])
    # nobody has the inbox open: no agent online, so the ticket, the place and a way to reach them
    assert texts[-1] == t("handoff_no_agent", lang, position=ahead + 1) + " " + t("handoff_ask_email", lang)
    ada = gw.agent("ada@example.com")
    conv = next(c for c in ada.queue() if c["handoff"]["language"] == lang and c["position"] == ahead + 1)
    assert conv["handoff"]["reason"] == "customer_request" and conv["handoff"]["skipped"] == ["name", "email"]
    # the customer's email while waiting is kept, not sent to the bot
    _, r = gw.ask(s, "kunde@example.com")
    assert [x["text"] for x in r] == [t("handoff_email_saved", lang, email="kunde@example.com")]
    ada.post(f"/api/inbox/conversations/{conv['id']}/resolve")


def test_an_agent_takes_over_in_the_browser_and_a_restart_loses_nothing(inbox_gateway):
    sync_api = playwright_api("sync")
    expect = sync_api.expect
    gw = inbox_gateway
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = sender()
    gw.ask(s, "How do I cancel my subscription?")
    hand_off(gw, s, "en")
    n_before = len(gw.poll(s)[1]["messages"])

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="en-GB")
            page.goto(gw.url + "/inbox")
            page.fill("#login-email", "ada@example.com")
            page.fill("#login-password", PASSWORD + "x")
            page.click("#login-form button[type=submit]")
            expect(page.locator("#login-error")).to_have_text("Wrong email or password.")
            page.fill("#login-password", PASSWORD)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#me")).to_have_text("Ada Admin")

            # the queue shows the conversation with the bot's summary
            item = page.locator("#conversation-list .conv", has_text="How do I cancel my subscription?")
            expect(item).to_have_count(1, timeout=15_000)
            item.click()
            expect(page.locator("#context-summary")).to_contain_text("How do I cancel my subscription?")
            expect(page.locator("#timeline")).to_contain_text("How do I cancel my subscription?")
            expect(page.locator("#timeline .sources a").first).to_have_attribute("href", re.compile("/help/en/"))
            # the form's two Skip buttons the customer clicked read as "Skip", never as their payload
            expect(page.locator("#timeline .text.clicked .chip", has_text="Skip")).to_have_count(2)
            expect(page.locator("#timeline")).not_to_contain_text("/skip")
            page.screenshot(path=str(ARTIFACTS / "inbox-queue.png"))

            page.click("#claim-button")
            expect(page.locator("#detail-meta")).to_contain_text("with you")
            expect(page.locator("#claim-button")).to_be_hidden()

            # a customer's message arrives in real time; the bot says nothing
            status, r = gw.ask(s, "Hello, are you a real person?")
            assert status == 200 and r == []
            expect(page.locator("#timeline")).to_contain_text("Hello, are you a real person?", timeout=10_000)

            # canned answer from the knowledge base, then the reply
            page.fill("#canned-query", "cancel subscription")
            page.click("#canned-form button[type=submit]")
            expect(page.locator("#canned-results .canned-item").first).to_be_visible(timeout=20_000)
            page.fill("#composer-text", "Yes, I'm Ada. <b>I can help</b> with the cancellation.")
            page.click("#send-button")
            expect(page.locator("#timeline .msg.agent").last).to_contain_text("<b>I can help</b>")
            # a note stays internal
            page.check("input[name=mode][value=note]")
            page.fill("#composer-text", "Customer wants to cancel; offer a pause first.")
            page.click("#send-button")
            expect(page.locator("#timeline .msg.note")).to_contain_text("offer a pause first")
            page.screenshot(path=str(ARTIFACTS / "inbox-conversation.png"))

            msgs = gw.poll(s)[1]["messages"]
            texts = [m["text"] for m in msgs[n_before:]]
            assert t("handoff_agent_joined", "en", name="Ada Admin") in texts
            assert "Yes, I'm Ada. <b>I can help</b> with the cancellation." in texts
            assert not any("offer a pause" in (x or "") for x in texts)
            last_id = msgs[-1]["id"]

            # the gateway restarts in the middle of the conversation
            gw.restart()
            status, r = gw.ask(s, "Still there after the restart?")
            assert status == 200 and r == []
            expect(page.locator("#connection")).to_be_hidden(timeout=20_000)
            expect(page.locator("#timeline")).to_contain_text("Still there after the restart?", timeout=20_000)
            expect(page.locator("#detail-meta")).to_contain_text("with you")
            page.check("input[name=mode][value=reply]")
            page.fill("#composer-text", "Yes, still here.")
            page.click("#send-button")
            expect(page.locator("#timeline .msg.agent").last).to_contain_text("Yes, still here.")
            _, polled = gw.poll(s, after=last_id, wait=10)
            assert [m["text"] for m in polled["messages"]] == ["Yes, still here."]
            expect(page.locator("#timeline")).to_contain_text("offer a pause first")  # the note survived

            # hand back to the bot: it answers again
            page.click("#handback-button")
            expect(page.locator("#detail-meta")).to_contain_text("with the bot")
            status, r = gw.ask(s, "How do I cancel my subscription?")
            assert status == 200 and any("/help/" in (x.get("text") or "") for x in r), r

            # the German UI for an agent whose language is German
            page2 = browser.new_page(viewport={"width": 1280, "height": 860}, locale="de-DE")
            page2.goto(gw.url + "/inbox")
            expect(page2.locator("#login-form button[type=submit]")).to_have_text("Anmelden")
            page2.fill("#login-email", "jonas@example.com")
            page2.fill("#login-password", PASSWORD)
            page2.click("#login-form button[type=submit]")
            expect(page2.locator("#me")).to_have_text("Jonas Weber")
            expect(page2.locator(".tab[data-view=queue]")).to_be_visible()
            expect(page2.locator(".tab[data-view=queue]")).to_contain_text("Warteschlange")
            expect(page2.locator("#logout-button")).to_have_text("Abmelden")
            page2.screenshot(path=str(ARTIFACTS / "inbox-de.png"))
        finally:
            browser.close()

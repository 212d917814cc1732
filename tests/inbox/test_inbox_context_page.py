"""The inbox's side panel in a real browser (Chromium via Playwright) on the real gateway: an upset
customer's churn risk with its reasons, the "very upset" mark on the message (a sentiment tag), and
"Confirm and link" joining the customer's other contact so the timeline shows both conversations."""
from __future__ import annotations


from bot.keys import SESSIONMAKER
from bot.store import repository as repo
from bot.store.models import Conversation, Message

from ..conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_executable, playwright_api
from .conftest import PASSWORD, make_settings, start_gateway


async def test_churn_risk_upset_mark_and_confirm_and_link_in_the_browser(tmp_path, assistant):
    async_api = playwright_api("async")
    gw = await start_gateway(make_settings(tmp_path, assistant, SENTIMENT="off"), tmp_path / "gw.db")
    try:
        await gw.add_agent("ben@example.com", "Ben Agent")
        api = gw.agent_client()
        await api.login("ben@example.com")
        # the same person wrote before from another sender id, and that address was confirmed there
        await gw.ask("old-device", "human please, order 1234")
        old = (await api.get("/api/inbox/conversations?view=queue"))[1]["conversations"][0]["id"]
        assert (await api.post(f"/api/inbox/conversations/{old}/confirm-email", {"email": "kim@example.com"}))[0] == 200
        await gw.ask("new-device", "I am angry, I want a refund now")
        async with gw.app[SESSIONMAKER]() as session:  # the sentiment tag the action server would add
            m = (await session.execute(Message.__table__.select().where(
                Message.text == "I am angry, I want a refund now"))).first()
            conv = await session.get(Conversation, m.conversation_id)
            repo.add_event(session, conv, "sentiment", {"message_id": m.public_id, "label": "negative",
                                                        "p_negative": 0.97, "p_positive": 0.01, "severity": "high"})
            await session.commit()
        await api.close()
        executable = chromium_executable()
        async with async_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            expect = async_api.expect
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(gw.url + "/inbox")
            await page.fill("#login-email", "ben@example.com")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            item = page.locator("#conversation-list .conv", has_text="I am angry")
            await expect(item).to_have_count(1, timeout=15_000)
            await item.click()
            risk = page.locator("#churn-risk")
            await expect(risk).to_be_visible()
            await expect(risk).to_contain_text("high (6 points)")
            await expect(risk).to_contain_text("asked to cancel, for a refund or a discount")
            await expect(page.locator("#timeline .msg.customer .feeling.high")).to_have_text("very upset")
            await expect(page.locator("#timeline")).not_to_contain_text("order 1234")
            await page.fill("#confirm-email", "kim@example.com")
            await page.click("#confirm-email-form button[type=submit]")
            await expect(page.locator("#confirm-email-result")).to_contain_text("Confirmed and linked")
            await expect(page.locator("#timeline")).to_contain_text("order 1234")  # the other device's conversation
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "inbox-context.png"))
            await browser.close()
    finally:
        await gw.close()

"""The website widget in a real browser (Debian's Chromium driven by Playwright) against the real
running stack: Rasa trained on the real data, the action server with the real index, the gateway.

Pages come from the gateway's demo page (same origin) and from a small "customer site" served
here on another port (cross-origin embedding, as on a real shop). Screenshots at desktop and
phone widths go to tests/artifacts/."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from knowledge_base.config import PROJECT_ROOT

from ..conftest import ARTIFACTS, CHROMIUM_ARGS, WIDGET_TEST_SECRET, chromium_executable, playwright_api
from ..inbox.stack_helpers import PASSWORD, SyncAgent

playwright_api("sync")  # fails under CI=true, else skips the module, without Chromium or Playwright
from playwright.sync_api import expect, sync_playwright  # noqa: E402

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
ANSWER_TIMEOUT = 60_000  # ms: the first answers of a fresh stack can be slow on a 2-core machine

pytestmark = pytest.mark.stack


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    # open, and the async tests of other modules need the thread to themselves.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Site:
    """A customer's website on its own origin: pages registered by path."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, gateway: str, *, lang: str | None = "en", csp: str | None = None, **data: str) -> str:
        """Register a page embedding the widget with these data- options (and, with ``csp``, that
        Content-Security-Policy); returns its URL."""
        attrs = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in data.items())
        html_lang = f' lang="{lang}"' if lang else ""
        policy = f'<meta http-equiv="Content-Security-Policy" content="{csp}">' if csp else ""
        path = f"/page-{uuid.uuid4().hex[:8]}"
        self.pages[path] = (f"<!doctype html><html{html_lang}><head><meta charset=utf-8>{policy}"
                            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                            f"<title>Shop</title></head><body><h1>Our shop</h1>"
                            f'<script src="{gateway}/widget.js"{attrs} defer></script></body></html>')
        return self.url + path

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site():
    s = Site()
    yield s
    s.close()


@pytest.fixture
def new_page(browser, running_stack):
    """new_page(viewport=..., locale=...) -> a page in a fresh browser context (its own localStorage);
    fails the test on any JavaScript error."""
    contexts, errors = [], []

    def make(viewport=DESKTOP, locale="en-US", context=None):
        ctx = context
        if ctx is None:
            ctx = browser.new_context(viewport=viewport, locale=locale)
            ctx.set_default_timeout(10_000)
            contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# --- helpers ------------------------------------------------------------------------------------

def launcher(page, name: str = "Chat with support"):
    return page.get_by_role("button", name=re.compile("^" + re.escape(name)))


def message_box(page, name: str = "Message"):
    return page.get_by_role("textbox", name=name)


def chat_log(page):
    return page.get_by_role("log")


def send(page, text: str, box_name: str = "Message"):
    box = message_box(page, box_name)
    box.fill(text)
    box.press("Enter")


def bubbles(page, role: str):
    return chat_log(page).locator(f".msg.{role} .bubble")


def inbound_count(running_stack, text: str) -> int:
    with running_stack.db() as db:
        return db.execute("SELECT count(*) FROM messages WHERE channel = 'webchat' AND direction = 'in' "
                          "AND text = ?", (text,)).fetchone()[0]


def watch_typing(page):
    page.evaluate("""() => {
        const t = document.querySelector('[data-support-widget]').shadowRoot.querySelector('.typing');
        window.__typingSeen = false;
        new MutationObserver(() => { if (!t.hidden) window.__typingSeen = true; })
            .observe(t, {attributes: true, attributeFilter: ['hidden']});
    }""")


# --- tests --------------------------------------------------------------------------------------

def test_ask_get_the_article_click_a_quick_reply_reload_and_a_second_tab(running_stack, new_page):
    page = new_page()
    page.goto(running_stack.url + "/")
    button = launcher(page)
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(message_box(page)).to_be_focused()  # focus moved into the panel
    expect(chat_log(page)).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("dialog", name="Brewbox help")).to_be_visible()

    watch_typing(page)
    send(page, "How do I reset my password?")
    link = chat_log(page).locator('a[href$="/help/en/reset-password"]')
    expect(link).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert link.get_attribute("href") == running_stack.url + "/help/en/reset-password"
    assert link.get_attribute("rel") == "noopener noreferrer"
    expect(chat_log(page).locator("strong", has_text="Forgot password?").first).to_be_visible()  # Markdown bold
    assert page.evaluate("window.__typingSeen") is True  # the typing indicator showed while the bot worked

    yes = page.get_by_role("button", name="Yes", exact=True)
    expect(yes).to_be_visible(timeout=ANSWER_TIMEOUT)
    yes.click()
    expect(bubbles(page, "customer").last).to_have_text("Yes")  # the title, not the payload
    expect(bubbles(page, "bot").last).to_contain_text("glad", timeout=ANSWER_TIMEOUT)
    expect(page.get_by_role("button", name="Yes", exact=True)).to_have_count(0)  # quick replies were used
    shot(page, "webchat-desktop.png")
    visitor = page.evaluate("() => Object.entries(localStorage).find(([k]) => k.endsWith(':visitor'))[1]")
    with running_stack.db() as db:  # this visitor's click (the database is shared with other tests)
        rows = db.execute("SELECT meta FROM messages WHERE channel = 'webchat' AND direction = 'in' AND text = '/affirm' "
                          "AND platform_message_id LIKE ?", (visitor + ":%",)).fetchall()
    assert [json.loads(r["meta"])["title"] for r in rows] == ["Yes"]

    # a reload shows the history
    page.reload()
    launcher(page).click()
    expect(bubbles(page, "customer")).to_have_text(["How do I reset my password?", "Yes"])
    expect(chat_log(page).locator('a[href$="/help/en/reset-password"]')).to_be_visible()

    # a second tab of the same visitor shows the same conversation ...
    tab2 = new_page(context=page.context)
    tab2.goto(running_stack.url + "/")
    launcher(tab2).click()
    expect(bubbles(tab2, "customer")).to_have_text(["How do I reset my password?", "Yes"])
    # ... and what is said there reaches the first tab live, with an unread badge while it is closed
    page.keyboard.press("Escape")
    send(tab2, "Where can I download my invoice?")
    expect(chat_log(tab2).locator('a[href$="/help/en/download-invoice"]')).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(launcher(page)).to_have_attribute("aria-label", re.compile(r"Chat with support, \d+ new messages"))
    badge = page.locator("[data-support-widget] .badge")
    expect(badge).to_be_visible()
    assert int(badge.inner_text()) >= 1
    shot(page, "webchat-desktop-unread.png")
    launcher(page).click()
    expect(bubbles(page, "customer").last).to_have_text("Where can I download my invoice?")
    expect(chat_log(page).locator('a[href$="/help/en/download-invoice"]')).to_be_visible()
    expect(badge).to_be_hidden()


def test_a_phone_gets_a_full_screen_panel(running_stack, new_page):
    page = new_page(viewport=PHONE)
    page.goto(running_stack.url + "/")
    shot(page, "webchat-phone-closed.png")
    launcher(page).click()
    panel = page.get_by_role("dialog")
    box = panel.bounding_box()
    assert box == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}, box
    send(page, "How can I track my order?")
    expect(chat_log(page).locator('a[href*="/help/en/"]').first).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(page.get_by_role("button", name="Yes", exact=True)).to_be_visible(timeout=ANSWER_TIMEOUT)
    send_button = page.get_by_role("button", name="Send")
    assert send_button.bounding_box()["x"] + send_button.bounding_box()["width"] <= PHONE["width"]
    shot(page, "webchat-phone.png")


def test_a_german_page_gets_a_german_widget_and_german_answers(running_stack, new_page):
    page = new_page(locale="en-US")  # the page's language wins over the browser's
    page.goto(running_stack.url + "/?lang=de")
    launcher(page, "Chat mit dem Kundenservice").click()
    box = message_box(page, "Nachricht")
    expect(box).to_have_attribute("placeholder", "Ihre Nachricht …")
    expect(page.get_by_role("button", name="Chat schließen")).to_be_visible()
    send(page, "Wie kann ich mein Abo kündigen?", box_name="Nachricht")
    expect(chat_log(page).locator('a[href$="/help/de/cancel-subscription"]')).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(page.get_by_role("button", name="Ja", exact=True)).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(chat_log(page)).to_contain_text("Hat das Ihre Frage beantwortet?")
    shot(page, "webchat-desktop-de.png")


@pytest.mark.parametrize("html_lang,data,locale,label", [
    ("en", {"language": "tr"}, "en-US", "Destek ile sohbet et"),  # data-language first
    ("ja", {}, "en-US", "サポートとチャット"),  # then the page's <html lang>
    (None, {}, "de-DE", "Chat mit dem Kundenservice"),  # then the browser's language
    ("fr", {"language": "xx"}, "fr-FR", "Chat with support"),  # none supported: English
])
def test_the_ui_language_comes_from_the_option_the_page_or_the_browser(running_stack, new_page, site, html_lang,
                                                                        data, locale, label):
    page = new_page(locale=locale)
    page.goto(site.page(running_stack.url, lang=html_lang, **data))
    expect(launcher(page, label)).to_be_visible()


def test_options_set_title_greeting_colour_and_position(running_stack, new_page, site):
    page = new_page()
    page.goto(site.page(running_stack.url, title="Ask Beany", greeting="Moin! What can I brew for you?",
                        color="rgb(10, 110, 60)", text_color="#ffffff", position="left"))
    button = launcher(page)
    assert button.bounding_box()["x"] < 100  # bottom left
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(10, 110, 60)"
    button.click()
    expect(page.get_by_role("dialog", name="Ask Beany")).to_be_visible()
    expect(bubbles(page, "bot").first).to_have_text("Moin! What can I brew for you?")


def test_a_site_with_a_strict_content_security_policy_needs_no_inline_style(running_stack, new_page, site):
    # what the README tells an embedding site to allow: the gateway for the script and the socket
    gateway, ws = running_stack.url, running_stack.url.replace("http", "ws", 1)
    page = new_page()
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")
    page.goto(site.page(gateway, csp=f"default-src 'none'; script-src {gateway}; connect-src {gateway} {ws}; "
                                     "style-src 'self'; img-src data:"))
    button = launcher(page)
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(107, 62, 38)"  # styled
    button.click()
    send(page, "How do I reset my password?")
    expect(chat_log(page).locator('a[href$="/help/en/reset-password"]')).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert page.evaluate("window.__violations") == []


def test_the_demo_page_allows_no_inline_style_but_its_own_and_breaks_none(running_stack, new_page):
    page = new_page()
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")
    resp = page.goto(running_stack.url + "/")
    csp = resp.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "style-src 'self' 'sha256-" in csp
    launcher(page).click()
    expect(page.get_by_role("dialog", name="Brewbox help")).to_be_visible()
    assert page.evaluate("window.__violations") == []
    # the page's own styles applied (its <style> block, allowed by its hash)
    assert page.evaluate("getComputedStyle(document.body).margin") != "8px"


def test_a_script_typed_as_a_message_is_shown_as_text(running_stack, new_page):
    page = new_page()
    page.goto(running_stack.url + "/")
    launcher(page).click()
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> **bold?**'
    send(page, evil)
    expect(bubbles(page, "customer").last).to_have_text(evil)
    expect(bubbles(page, "bot").nth(1)).to_be_visible(timeout=ANSWER_TIMEOUT)  # the greeting, then an answer
    assert chat_log(page).locator("script, img, .customer strong").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert inbound_count(running_stack, evil) == 1


def test_escape_closes_and_focus_returns_to_the_launcher(running_stack, new_page):
    page = new_page()
    page.goto(running_stack.url + "/")
    button = launcher(page)
    button.focus()
    page.keyboard.press("Enter")
    expect(message_box(page)).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_be_focused()
    # the close button does the same
    button.click()
    page.get_by_role("button", name="Close chat").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(button).to_be_focused()


def test_the_widget_shows_when_the_service_is_unreachable_and_recovers_without_sending_twice(running_stack,
                                                                                                new_page):
    page = new_page()
    page.goto(running_stack.url + "/")
    launcher(page).click()
    send(page, "Hello")
    expect(bubbles(page, "bot").nth(1)).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(page.locator("[data-support-widget] .typing")).to_be_hidden(timeout=ANSWER_TIMEOUT)
    answered = bubbles(page, "bot").count()
    status = page.get_by_role("dialog").get_by_role("status").filter(has_text="Reconnecting")
    gateway = running_stack.child("gateway")
    question = f"Can I pause my subscription for a month? ({uuid.uuid4().hex[:6]})"
    gateway.stop()
    try:
        expect(status).to_be_visible(timeout=15_000)
        expect(status).to_have_text(re.compile("^Reconnecting…"))
        send(page, question)  # typed while the gateway is down: queued in the browser
        pending = chat_log(page).locator(".msg.pending")
        expect(pending).to_have_count(1)
        expect(pending).to_contain_text("Not sent yet")
        shot(page, "webchat-desktop-reconnecting.png")
        assert inbound_count(running_stack, question) == 0
    finally:
        gateway.start()
        running_stack.stack.wait_ready(timeout=120)
    expect(status).to_be_hidden(timeout=40_000)
    expect(chat_log(page).locator(".msg.pending")).to_have_count(0, timeout=20_000)
    expect(bubbles(page, "customer").last).to_have_text(question)
    expect(bubbles(page, "bot").nth(answered)).to_be_visible(timeout=ANSWER_TIMEOUT)  # and it was answered
    assert inbound_count(running_stack, question) == 1
    # a reload after the restart: the message is in the history once
    page.reload()
    launcher(page).click()
    expect(bubbles(page, "customer").filter(has_text=question)).to_have_count(1)


def _signed(user: str, secret: str = WIDGET_TEST_SECRET) -> str:
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def test_a_signed_user_continues_the_conversation_in_another_browser(running_stack, new_page, site):
    user = f"customer-{uuid.uuid4().hex[:8]}"
    url = site.page(running_stack.url, user_id=user, user_hash=_signed(user))
    first = new_page()
    first.goto(url)
    launcher(first).click()
    send(first, "How do I change my email address?")
    expect(chat_log(first).locator('a[href*="/help/en/"]').first).to_be_visible(timeout=ANSWER_TIMEOUT)
    # another browser (its own localStorage): the same signed user sees the same conversation
    other = new_page()
    other.goto(url)
    launcher(other).click()
    expect(bubbles(other, "customer")).to_have_text(["How do I change my email address?"])
    expect(page_alert(other)).to_be_hidden()
    with running_stack.db() as db:
        ident = db.execute("SELECT contact_id, verified FROM contact_identities WHERE channel = 'webchat-user' "
                           "AND source_id = ?", (user,)).fetchone()
        tokens = db.execute("SELECT count(DISTINCT source_id) FROM contact_identities WHERE channel = 'webchat' "
                            "AND contact_id = ?", (ident["contact_id"],)).fetchone()[0]
    assert ident["verified"] == 1 and tokens == 2


def page_alert(page):
    return page.get_by_role("dialog").get_by_role("alert")


def test_a_forged_user_hash_is_refused_and_the_visitor_chats_as_a_guest(running_stack, new_page, site):
    user = f"customer-{uuid.uuid4().hex[:8]}"
    page = new_page()
    page.goto(site.page(running_stack.url, user_id=user, user_hash=_signed(user, "not-the-secret")))
    launcher(page).click()
    expect(page_alert(page)).to_have_text("We couldn't verify your account, so you're chatting as a guest.")
    send(page, "hello")
    expect(bubbles(page, "bot").nth(1)).to_be_visible(timeout=ANSWER_TIMEOUT)
    shot(page, "webchat-desktop-identity-refused.png")
    with running_stack.db() as db:
        assert db.execute("SELECT count(*) FROM contact_identities WHERE source_id = ?", (user,)).fetchone()[0] == 0


def add_agent(running_stack, name: str) -> str:
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", name], input=PASSWORD + "\n",
                       env=running_stack.env, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return email


def test_an_agents_reply_shows_the_agents_name_and_does_not_look_like_the_bot(running_stack, new_page):
    email = add_agent(running_stack, "Jonas Weber")
    page = new_page()
    page.goto(running_stack.url + "/")
    launcher(page).click()
    send(page, "I want to talk to a person")
    for _ in ("name", "email"):  # the real hand-off form: skip both questions with their buttons
        skip = page.get_by_role("button", name="Skip", exact=True)
        expect(skip).to_be_visible(timeout=ANSWER_TIMEOUT)
        skip.click()
        expect(skip).to_have_count(0)
    expect(chat_log(page).locator(".msg.system")).to_be_visible(timeout=ANSWER_TIMEOUT)  # queued
    visitor = page.evaluate("() => Object.entries(localStorage).find(([k]) => k.endsWith(':visitor'))[1]")
    with running_stack.db() as db:
        conversation = db.execute(
            "SELECT c.public_id FROM conversations c JOIN contact_identities i ON i.contact_id = c.contact_id "
            "WHERE i.channel = 'webchat' AND i.source_id = ? AND c.status = 'pending'", (visitor,)).fetchone()[0]

    agent = SyncAgent(running_stack.url)
    assert agent.login(email)[0] == 200
    # the inbox reads the clicks as the buttons' titles the widget sent, not as "/skip"
    status, detail = agent.get(f"/api/inbox/conversations/{conversation}")
    clicks = [m for m in detail["timeline"] if m.get("sender_type") == "customer" and m.get("clicked")]
    assert status == 200 and [m["text"] for m in clicks] == ["Skip", "Skip"]
    assert "/skip" not in json.dumps(detail)
    assert agent.post(f"/api/inbox/conversations/{conversation}/claim")[0] == 200
    assert agent.post(f"/api/inbox/conversations/{conversation}/reply", {"text": "Hi, how can I help?"})[0] == 201

    mine = chat_log(page).locator(".msg.agent")
    expect(mine).to_have_count(1, timeout=15_000)
    expect(mine.locator(".bubble")).to_have_text("Hi, how can I help?")
    expect(mine.locator(".who")).to_contain_text("Jonas Weber · Support team")  # named, and said to be a person
    expect(mine.locator(".who .avatar")).to_have_text("J")
    expect(mine.locator(".who .avatar")).to_have_attribute("aria-hidden", "true")
    # screen readers: the row starts with who wrote it (the initial is hidden from them)
    spoken = mine.evaluate("row => Array.from(row.querySelectorAll('.who span:not(.avatar)'))"
                           ".map(s => s.textContent).join('')")
    assert spoken == "Jonas Weber · Support team: "
    # the bot's messages keep their look and label and never carry a person's name
    bot_rows = chat_log(page).locator(".msg.bot")
    assert bot_rows.count() >= 2 and chat_log(page).locator(".msg.bot .who").count() == 0
    assert all(t == "Assistant: " for t in bot_rows.locator(".sr").all_text_contents())
    assert "Jonas" not in " ".join(bot_rows.all_text_contents())
    style = "b => { const s = getComputedStyle(b); return [s.borderTopWidth, s.borderTopColor, s.backgroundColor]; }"
    border, colour, background = mine.locator(".bubble").evaluate(style)
    accent = launcher(page).evaluate("b => getComputedStyle(b).backgroundColor")  # the page's data-color
    assert float(border.removesuffix("px")) >= 1 and colour == accent  # framed in the widget's colour
    assert bot_rows.last.locator(".bubble").evaluate(style) == ["0px", "rgb(29, 29, 31)", background]
    shot(page, "webchat-desktop-agent.png")

    # a reload shows the same: the name comes with the history too
    page.reload()
    launcher(page).click()
    expect(chat_log(page).locator(".msg.agent .who")).to_contain_text("Jonas Weber · Support team")
    agent.post(f"/api/inbox/conversations/{conversation}/resolve")

"""The editors' page at /editor in a real browser (Debian's Chromium driven by Playwright) on the real
stack: an editor writes an article and submits it, a second editor approves and publishes it, the
bot answers with it; a new version, the diff and a roll back; a concurrent save shows a conflict, not
an overwrite; HTML in a title is shown as text; an agent gets no editor. Screenshots go to
tests/artifacts/ (editor-list.png, editor-article.png)."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest

from knowledge_base.config import PROJECT_ROOT

from ..conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_executable, playwright_api
from ..inbox.conftest import PASSWORD
from ..inbox.stack_helpers import SyncAgent, request
from .test_editor_stack import bot_text

pytestmark = pytest.mark.stack


async def test_the_page_and_its_files_are_served_with_security_headers(offline_gateway):
    gw, _ = offline_gateway
    for path, ctype in (("/editor", "text/html"), ("/editor/static/editor.js", "application/javascript"),
                        ("/editor/static/editor.css", "text/css"), ("/editor/static/texts.json", "application/json"),
                        ("/staff/static/staff.js", "application/javascript")):
        async with gw.gw.http.get(gw.gw.url + path) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(ctype), path
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            if path == "/editor":
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    async with gw.gw.http.get(gw.gw.url + "/editor/static/../../settings.py") as r:
        assert r.status == 404


def add_account(stack, role: str) -> str:
    email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
    p = subprocess.run([sys.executable, "-m", "bot", "agents", "add", email, "--name", f"{role.title()} {email[:9]}",
                        "--role", role], input=PASSWORD + "\n", env=stack.env, capture_output=True, text=True,
                       cwd=PROJECT_ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return email


def sign_in(page, url: str, email: str) -> None:
    page.goto(url + "/editor")
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_write_review_publish_roll_back_in_the_browser(running_stack):
    sync_api = playwright_api("sync")
    expect = sync_api.expect
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = running_stack.url
    eva, edd, agent = add_account(running_stack, "editor"), add_account(running_stack, "editor"), \
        add_account(running_stack, "agent")
    tag = uuid.uuid4().hex[:6]
    title = f"Do you offer coffee subscriptions for offices ({tag})?"
    link = f"/help/en/do-you-offer-coffee-subscriptions-for-offices-{tag}"
    question = "Can my office get a coffee subscription for the whole team?"

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
            sign_in(page, url, eva)
            expect(page.locator("#article-list li").first).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "editor-list.png"))

            # write a new article with a live preview and an "also asked as" question, then submit it
            page.click("#new-button")
            page.select_option("#edit-locale", "en")
            page.fill("#edit-title", title)
            page.fill("#edit-body", "Yes: **Brewbox for Offices** delivers 2 to 20 kg a month to your office.\n\n"
                                    "## Ordering\n- choose your beans\n- [order here](/offices)")
            expect(page.locator("#edit-preview strong")).to_have_text("Brewbox for Offices")
            expect(page.locator("#edit-preview a")).to_have_attribute("href", "/offices")
            expect(page.locator("#edit-preview h3")).to_have_text("Ordering")
            expect(page.locator("#edit-preview ul li")).to_have_count(2)
            # Enter in the "also asked as" box adds the question; it does not save the form
            page.fill("#question-new", "Do you deliver coffee to businesses?")
            page.press("#question-new", "Enter")
            expect(page.locator("#question-list li")).to_have_count(1)
            expect(page.locator("#question-list li").first).to_contain_text("Do you deliver coffee to businesses?")
            expect(page.locator("#question-new")).to_have_value("")
            expect(page.locator("#question-new")).to_be_focused()
            expect(page.locator("#edit-meta")).to_have_text("New article")  # nothing was saved
            page.fill("#question-new", "Coffee for the office?")
            page.click("#question-add")
            page.fill("#question-new", "Can you supply our office kitchen?")  # typed, then Save: kept too
            page.click("#save-button")
            expect(page.locator("#edit-meta")).to_contain_text("Version 1")
            expect(page.locator("#question-list li")).to_have_count(3)  # as saved: the server's version 1
            expect(page.locator("#publish-button")).to_be_hidden()  # a draft needs a review first
            page.click("#submit-button")
            expect(page.locator("#edit-meta")).to_contain_text("in review")
            expect(page.locator("#edit-meta")).to_contain_text(
                "Cannot publish yet: the latest version needs an approval by a second editor")
            assert link not in bot_text(running_stack, question), "not published yet"

            # a second editor approves and publishes; the bot answers with it
            page2 = browser.new_context(locale="en-GB").new_page()
            sign_in(page2, url, edd)
            page2.fill("#filter-q", tag)
            page2.click("#filter-form button[type=submit]")
            page2.locator("#article-list li", has_text=tag).first.click()
            expect(page2.locator("#edit-meta")).to_contain_text("in review")
            page2.click("#approve-button")
            page2.click("#publish-button")
            expect(page2.locator("#edit-meta")).to_contain_text("live (version 1)", timeout=60_000)
            # one consistent status: published and live, nothing about not being publishable
            expect(page2.locator("#edit-meta")).to_have_text(re.compile(
                r"^Version 1 · published · live \(version 1\) · by [^.]+\. Published: the bot answers with it now\.$"))
            expect(page2.locator("#publish-button")).to_be_hidden()
            assert link in bot_text(running_stack, question)

            # a new version, its diff, and a roll back to version 1
            page.locator("#article-list li", has_text=tag).first.click()
            expect(page.locator("#edit-meta")).to_contain_text("live (version 1)")
            page.fill("#edit-body", "Yes: Brewbox for Offices delivers 5 to 50 kg a month.")
            page.click("#save-button")
            expect(page.locator("#edit-meta")).to_contain_text("Version 2")
            page.click(".tab[data-tab=history]")
            page.locator("#version-list li[data-version='1'] .compare").click()
            expect(page.locator("#diff .add").first).to_be_visible()
            expect(page.locator("#diff")).to_contain_text("5 to 50 kg")
            page.locator("#version-list li[data-version='1'] .rollback").click()
            page.click(".tab[data-tab=edit]")
            expect(page.locator("#edit-meta")).to_contain_text("Version 3")
            expect(page.locator("#edit-body")).to_have_value(
                "Yes: **Brewbox for Offices** delivers 2 to 20 kg a month to your office.\n\n"
                "## Ordering\n- choose your beans\n- [order here](/offices)")
            page.screenshot(path=str(ARTIFACTS / "editor-article.png"))

            # someone else saves meanwhile: this save is refused with a conflict, not an overwrite
            other = SyncAgent(url)
            assert other.login(edd)[0] == 200
            article_id = link.rsplit("/", 1)[1] + "-en"
            status, body = request(other.opener, "PUT", url + f"/api/editor/articles/{article_id}",
                                   {"base_version": 3, "title": title + " (edited)"},
                                   headers={"X-CSRF-Token": other.csrf})
            assert status == 200 and body["article"]["head_version"] == 4
            page.fill("#edit-title", title + " (mine)")
            page.click("#save-button")
            expect(page.locator("#conflict")).to_be_visible()
            expect(page.locator("#conflict-text")).to_contain_text("version 4")
            page.click("#conflict-reload")
            expect(page.locator("#edit-title")).to_have_value(title + " (edited)")

            # "test a question" shows the decision and the ranked articles
            page.click(".tab[data-tab=try]")
            page.fill("#try-question", question)
            page.click("#try-form button[type=submit]")
            expect(page.locator("#try-current .decision")).to_contain_text("Decision:", timeout=30_000)
            expect(page.locator("#try-current .hits li").first).to_be_visible()

            # HTML in a title is text, never markup
            page.click(".tab[data-tab=edit]")
            page.click("#new-button")
            evil = f"<img src=x onerror=alert(1)> evil {tag}"
            page.fill("#edit-title", evil)
            page.fill("#edit-body", "<script>alert(2)</script> body")
            page.click("#save-button")
            expect(page.locator("#edit-meta")).to_contain_text("Version 1")
            expect(page.locator("#article-list")).to_contain_text(evil)
            assert page.locator("#article-list img, #edit-preview img, #edit-preview script").count() == 0

            # gaps: a question the bot could not answer becomes a topic, and a draft in one click
            unanswered = f"Do you have a student discount for {tag} students?"
            _, replies = running_stack.ask(f"gap-{tag}", unanswered)
            assert not any(link in (r.get("text") or "") for r in replies)
            page.click(".tab[data-tab=gaps]")
            topic = page.locator("#gaps-topics li.topic", has_text=unanswered)
            expect(topic).to_have_count(1, timeout=30_000)
            topic.locator(".create-from-topic").click()
            expect(page.locator("#edit-title")).to_have_value(unanswered)
            expect(page.locator("#edit-meta")).to_contain_text("Version 1")

            # an agent signs in but gets no editor
            page3 = browser.new_context(locale="de-DE").new_page()
            sign_in(page3, url, agent)
            expect(page3.locator("#denied-view")).to_be_visible()
            expect(page3.locator("#denied-view h2")).to_have_text("Kein Zugriff")
            assert page3.locator("#app-view").is_hidden()
        finally:
            browser.close()

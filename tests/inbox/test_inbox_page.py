"""The inbox page's static side: UI texts complete in English and German, every text key the page
uses exists, and nothing is ever rendered as HTML."""
from __future__ import annotations

import json
import re
from pathlib import Path

from bot.inbox.views import STATIC_FILES

WEB = Path(__file__).resolve().parents[2] / "bot" / "web" / "inbox"


def inbox_scripts() -> str:
    """Every script of the inbox page (inbox.js and its parts), as the page loads them."""
    html = (WEB / "index.html").read_text(encoding="utf-8")
    names = re.findall(r'<script src="/inbox/static/([a-z_]+\.js)"', html)
    assert "inbox.js" in names and len(names) > 1, names
    assert sorted(names) == sorted(p.name for p in WEB.glob("*.js")), "a script of the page is not loaded by it"
    assert set(names) <= set(STATIC_FILES), "a script of the page is not served (bot/inbox/views.py)"
    return "\n".join((WEB / name).read_text(encoding="utf-8") for name in names)


def test_the_ui_texts_exist_in_english_and_german():
    texts = json.loads((WEB / "texts.json").read_text(encoding="utf-8"))
    assert set(texts) >= {"en", "de"}
    assert set(texts["en"]) == set(texts["de"]), set(texts["en"]) ^ set(texts["de"])
    assert all(v.strip() for lang in ("en", "de") for v in texts[lang].values())
    used = set(re.findall(r'\bt\("([a-z_0-9]+)"', inbox_scripts()))
    used |= set(re.findall(r'data-t="([a-z_0-9]+)"', (WEB / "index.html").read_text(encoding="utf-8")))
    dynamic = {f"status_{s}" for s in ("bot", "pending", "open", "resolved")} | {"priority_1", "priority_2"} | \
        {f"role_{r}" for r in ("customer", "bot", "agent", "system", "note")} | \
        {f"captured_{k}" for k in ("name", "email", "order_number")} | {"event_assistant_unavailable"}
    used = {k for k in used if not k.endswith("_")}  # prefixes of the dynamic keys above
    missing = (used | dynamic) - set(texts["en"])
    assert not missing, missing


def test_nothing_is_rendered_as_html():
    js = inbox_scripts()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    html = (WEB / "index.html").read_text(encoding="utf-8")
    # no inline scripts or event handlers (the page's Content-Security-Policy forbids them anyway)
    assert "<script>" not in html and not re.search(r"\son[a-z]+\s*=", html)


def test_the_editor_page_has_its_texts_and_no_html_sinks_either():
    editor, staff = WEB.parent / "editor", WEB.parent / "staff"
    texts = json.loads((editor / "texts.json").read_text(encoding="utf-8"))
    assert set(texts["en"]) == set(texts["de"]), set(texts["en"]) ^ set(texts["de"])
    js = (editor / "editor.js").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\("([a-z_0-9]+)"', js)) | \
        set(re.findall(r'data-t="([a-z_0-9]+)"', (editor / "index.html").read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith("_")} | {f"status_{s}" for s in ("draft", "in_review", "published",
                                                                              "archived")}
    assert not used - set(texts["en"]), used - set(texts["en"])
    for source in (js, (staff / "staff.js").read_text(encoding="utf-8")):
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, sink


def test_the_dashboard_page_has_its_texts_and_no_html_sinks_either():
    dash = WEB.parent / "dashboard"
    texts = json.loads((dash / "texts.json").read_text(encoding="utf-8"))
    assert set(texts["en"]) == set(texts["de"]), set(texts["en"]) ^ set(texts["de"])
    js = (dash / "dashboard.js").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\("([a-z_0-9]+)"', js)) | set(re.findall(r'key: "([a-z_0-9]+)"', js)) | \
        set(re.findall(r'data-t="([a-z_0-9]+)"', (dash / "index.html").read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith("_")} | {f"level_{x}" for x in ("high", "medium", "low", "none")} | \
        {f"kpi_{k}" for k in ("conversations", "containment", "handoff", "fcr", "first_response", "resolution",
                              "csat", "nps", "unanswered")}
    assert not used - set(texts["en"]), used - set(texts["en"])
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink

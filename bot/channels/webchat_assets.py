"""The widget's script as GET /widget.js serves it (bot/channels/webchat.py): bot/web/static/widget.js
with its parts put in where its markers are, so a site embeds one script and the browser makes one
request, with no build step. ``/*@include widget_view.js*/`` becomes that file's code,
``/*@include widget.css*/""`` that stylesheet as a JavaScript string, ``/*@texts*/{}`` the widget's
UI texts of bot/i18n.py. Assembled once at start; a missing marker or part stops the start."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from ..i18n import TEXTS

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
TEXTS_MARKER = "/*@texts*/{}"
INCLUDE = re.compile(r'/\*@include ([A-Za-z0-9_-]+\.(js|css))\*/(?:"")?')
PARTS = ("widget.css", "widget_view.js", "widget_transport.js")  # every one must be included, once


def widget_texts() -> dict[str, dict[str, str]]:
    return {k: v for k, v in TEXTS.items() if k.startswith("widget_")}


def widget_script(static_dir: Path = STATIC_DIR) -> bytes:
    source = (static_dir / "widget.js").read_text(encoding="utf-8")
    if TEXTS_MARKER not in source:
        raise RuntimeError(f"widget.js lacks the {TEXTS_MARKER} marker for its texts")
    included = [m.group(1) for m in INCLUDE.finditer(source)]
    if sorted(included) != sorted(PARTS):
        raise RuntimeError(f"widget.js must include each of {', '.join(PARTS)} once; it includes {included}")

    def part(match: re.Match) -> str:
        text = (static_dir / match.group(1)).read_text(encoding="utf-8")
        return json.dumps(text) if match.group(2) == "css" else text

    source = INCLUDE.sub(part, source)
    return source.replace(TEXTS_MARKER, json.dumps(widget_texts(), ensure_ascii=False), 1).encode()


def style_hash(page: str) -> str:
    """The CSP source ('sha256-...') of a page's one <style> block."""
    found = re.search(r"<style>(.*?)</style>", page, re.S)
    if not found:
        return ""
    return "'sha256-" + base64.b64encode(hashlib.sha256(found.group(1).encode("utf-8")).digest()).decode() + "'"

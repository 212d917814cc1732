"""The bot's replies as WhatsApp Cloud API messages, within Meta's limits, and interactive replies
mapped back to the bot's button payloads. No state of the gateway (see whatsapp.py)."""
from __future__ import annotations

import hashlib
import re

from ..i18n import t
from ..messages import Reply

# Meta's limits for the messages we send.
MAX_TEXT_CHARS = 4096
MAX_BUTTON_BODY_CHARS = 1024  # reply buttons
MAX_LIST_BODY_CHARS = 4096  # lists (Meta's interactive list reference)
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE_CHARS = 20
MAX_BUTTON_ID_CHARS = 256
MAX_LIST_ROWS = 10
MAX_ROW_TITLE_CHARS = 24
MAX_ROW_ID_CHARS = 200
MAX_ROW_DESCRIPTION_CHARS = 72
MAX_LIST_BUTTON_CHARS = 20
MAX_SECTION_TITLE_CHARS = 24

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
# A reply id made unique within its message: the button's position, then the payload's own id.
_REPEATED_ID = re.compile(r"^#(\d+):(.*)$", re.S)


def split_text(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """Split a long text into parts of at most ``limit`` characters, preferring paragraph, then
    line, then sentence, then word boundaries (a hard cut only for a single huge word)."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit + 1]
        cut = -1
        for finder in (lambda w: w.rfind("\n\n"), lambda w: w.rfind("\n"), _last_sentence_end,
                       lambda w: w.rfind(" ")):
            pos = finder(window)
            if pos >= limit // 3:
                cut = pos
                break
        if cut <= 0:
            cut = limit
        head, text = text[:cut].rstrip(), text[cut:].lstrip()
        if head:
            parts.append(head)
    if text:
        parts.append(text)
    return parts


def _last_sentence_end(window: str) -> int:
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= len(window) - 1]
    return ends[-1] if ends else -1


def shorten(title: str, limit: int) -> str:
    title = " ".join(str(title).split())
    return title if len(title) <= limit else title[:limit - 1].rstrip() + "…"


def _hashed(payload: str) -> str:
    return "h:" + hashlib.sha256(payload.encode()).hexdigest()[:40]


def button_id(payload: str, limit: int) -> str:
    """The reply id of a button: the payload itself when it fits (so a reply maps back without any
    state), else a hash of it (mapped back through the message the customer replied to)."""
    return payload if 0 < len(payload) <= limit else _hashed(payload)


def reply_ids(payloads: list[str], limit: int) -> list[str]:
    """The reply ids of one message's buttons or list rows. Meta refuses a message whose ids repeat
    (400), so a payload that an earlier button of the message has already gets its position in
    front: "#2:/affirm" (mapped back by payload_for_reply, with or without the replied-to message)."""
    ids: list[str] = []
    for position, payload in enumerate(payloads):
        rid = button_id(payload, limit)
        if rid in ids:
            rid = f"#{position}:{rid}"
            if len(rid) > limit:
                rid = f"#{position}:{_hashed(payload)}"
        ids.append(rid)
    return ids


def _unique(titles: list[str], limit: int) -> list[str]:
    seen: set[str] = set()
    out = []
    for title in titles:
        candidate, n = title, 2
        while candidate in seen:
            suffix = f" {n}"
            candidate = shorten(title, limit - len(suffix)).rstrip("…") + suffix
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _buttons(buttons: list | None) -> list[tuple[str, str]]:
    """(title, payload) of the bot's buttons WhatsApp can show, in order."""
    out = []
    for b in buttons or []:
        if not isinstance(b, dict):
            continue
        title = b.get("title") if isinstance(b.get("title"), str) else None
        payload = b.get("payload") if isinstance(b.get("payload"), str) else None
        if not (title or payload):
            continue
        out.append(((title or payload).strip() or payload, (payload or title).strip()))
    return out


def _text(body: str) -> dict:
    return {"type": "text", "text": {"body": body, "preview_url": "http" in body}}


def render(reply: Reply, lang: str | None) -> list[dict]:
    """The WhatsApp messages (type + content, without recipient) for one bot reply."""
    buttons = _buttons(reply.buttons)
    text = (reply.text or "").strip()
    if not buttons:
        return [_text(part) for part in split_text(text)] if text else []
    as_list = len(buttons) > MAX_REPLY_BUTTONS
    body_limit = MAX_LIST_BODY_CHARS if as_list else MAX_BUTTON_BODY_CHARS
    parts = split_text(text or t("choose_option", lang))
    if len(parts[-1]) > body_limit:
        parts = parts[:-1] + split_text(parts[-1], body_limit)
    leading, body = [_text(p) for p in parts[:-1]], parts[-1]
    if not as_list:
        titles = _unique([shorten(title, MAX_BUTTON_TITLE_CHARS) for title, _ in buttons], MAX_BUTTON_TITLE_CHARS)
        ids = reply_ids([payload for _, payload in buttons], MAX_BUTTON_ID_CHARS)
        interactive = {"type": "button", "body": {"text": body}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": rid, "title": title}} for title, rid in zip(titles, ids)]}}
    else:
        chosen = buttons[:MAX_LIST_ROWS]
        titles = _unique([shorten(title, MAX_ROW_TITLE_CHARS) for title, _ in chosen], MAX_ROW_TITLE_CHARS)
        ids = reply_ids([payload for _, payload in chosen], MAX_ROW_ID_CHARS)
        rows = []
        for short, rid, (title, _) in zip(titles, ids, chosen):
            row = {"id": rid, "title": short}
            full = " ".join(title.split())
            if short != full:
                row["description"] = shorten(full, MAX_ROW_DESCRIPTION_CHARS)
            rows.append(row)
        # Meta's list reference marks the section title required (a list without one can be refused).
        section = {"title": shorten(t("list_section", lang), MAX_SECTION_TITLE_CHARS), "rows": rows}
        interactive = {"type": "list", "body": {"text": body},
                       "action": {"button": shorten(t("list_button", lang), MAX_LIST_BUTTON_CHARS),
                                  "sections": [section]}}
    return leading + [{"type": "interactive", "interactive": interactive}]


def payload_for_reply(reply_id: str, title: str | None, buttons: list | None) -> str:
    """Map an interactive reply's id back to the payload of the bot's button: through the buttons of
    the message replied to when they are known, else from the id itself."""
    shown = _buttons(buttons)
    for chosen, limit in ((shown[:MAX_REPLY_BUTTONS], MAX_BUTTON_ID_CHARS), (shown[:MAX_LIST_ROWS], MAX_ROW_ID_CHARS)):
        for rid, (_, payload) in zip(reply_ids([p for _, p in chosen], limit), chosen):
            if rid == reply_id:
                return payload
    repeated = _REPEATED_ID.match(reply_id)
    own_id = repeated.group(2) if repeated else reply_id
    if own_id.startswith("/"):
        return own_id
    return title or own_id

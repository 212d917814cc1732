"""Button payloads the gateway answers itself (never sent to the bot): ``/name{json}``."""
from __future__ import annotations

import json


def make(name: str, data: dict) -> str:
    return f"/{name}" + json.dumps(data, separators=(",", ":"))


def parse(text: str | None, name: str) -> dict | None:
    """The JSON object of a ``/name{...}`` payload, or None when ``text`` is not one."""
    text = (text or "").strip()
    prefix = f"/{name}"
    if not text.startswith(prefix + "{"):
        return None
    try:
        data = json.loads(text[len(prefix):])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def button_title(buttons: object, payload: str | None) -> str | None:
    """The title of the button in ``buttons`` whose payload is ``payload`` (what a customer clicked,
    in the words they saw), or None."""
    if not payload or not isinstance(buttons, list):
        return None
    for b in buttons:
        if isinstance(b, dict) and b.get("payload") == payload and isinstance(b.get("title"), str) \
                and b["title"].strip():
            return b["title"].strip()
    return None


def is_payload(text: str | None) -> bool:
    """A button's payload (Rasa's ``/intent{...}`` convention), not words a customer typed."""
    return bool(text) and text.startswith("/")

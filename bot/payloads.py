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

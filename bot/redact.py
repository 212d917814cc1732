"""PII redaction in logs: a logging filter, installed on the root handlers of the gateway and the
action server (``install()``), that masks in every formatted log message
- email addresses -> ``<email>``
- phone numbers (8 to 15 digits with +, spaces, dots, dashes or brackets; not dates) -> ``<phone>``
- order numbers the bot captures (``#`` or "order"/"Bestellung"/"sipariş"/"注文" followed by 4-12
  digits or letters with digits) -> ``<order>``
Ids the logs need (public ids, wamids) are not matched: they are hex or base64 runs with letters.
"""
from __future__ import annotations

import logging
import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![\w/:])(?:\+|\()?\d[\d\s().-]{6,18}\d(?![\w/:])")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ORDER = re.compile(r"(?i)(#|\b(?:order|bestellung|sipari[sş]|注文)\s*(?:no\.?|nr\.?|number|nummer)?\s*[:#]?\s*)"
                   r"([A-Z]{0,3}-?\d[\dA-Z-]{3,11})\b")


def redact(text: str) -> str:
    text = EMAIL.sub("<email>", text)
    text = ORDER.sub(lambda m: m.group(1) + "<order>", text)
    return PHONE.sub(lambda m: "<phone>" if sum(c.isdigit() for c in m.group(0)) >= 8
                     and not DATE.match(m.group(0)) else m.group(0), text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record: leave it to the handler
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install() -> None:
    """Add the filter to every handler of the root logger (call after logging.basicConfig)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

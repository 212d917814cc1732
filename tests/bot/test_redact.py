"""PII redaction in logs: emails, phone numbers and order numbers are masked; ids are not."""
from __future__ import annotations

import logging

from bot.redact import RedactingFilter, install, redact


def test_emails_phones_and_order_numbers_are_masked():
    assert redact("from jana.novak+test@example.co.uk about it") == "from <email> about it"
    assert redact("call +49 151 2345 6789 or (030) 1234-5678") == "call <phone> or <phone>"
    assert redact("wa_id 4915123456789 wrote") == "wa_id <phone> wrote"
    assert redact("Order #12345 and order number: BB-99812, Bestellung 77123") == \
        "Order #<order> and order number: <order>, Bestellung <order>"
    assert redact("注文 123456 について") == "注文 <order> について"


def test_ids_counts_and_times_are_kept():
    for text in ("conversation 3f9a2c4e8b1d4e6f9a0b1c2d3e4f5a6b", "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTRB",
                 "answered 12 messages in 350 ms", "at 2026-11-24 01:30:00", "version v23.0, port 5055"):
        assert redact(text) == text


def test_the_filter_rewrites_records_with_arguments(caplog):
    logger = logging.getLogger("test.redact")
    handler = logging.Handler()
    seen = []
    handler.emit = lambda record: seen.append(record.getMessage())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("customer %s (%s) asked about order #%s", "ana@example.com", "+90 532 123 45 67", "88231")
    finally:
        logger.removeHandler(handler)
    assert seen == ["customer <email> (<phone>) asked about order #<order>"]


def test_install_adds_the_filter_once_to_every_root_handler():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        install()
        install()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)

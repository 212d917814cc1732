"""WhatsApp Cloud API simulator (Meta's webhooks and Graph API) for tests and local trials.

In tests::

    sim = SimulatorThread(WhatsAppSimulator(webhook_url=..., app_secret=..., access_token=...,
                                            phone_number_id=...), port=...)
    wamid, statuses = sim.send_text("4915112345678", "Wie kann ich mein Abo kündigen?")
    sim.wait_for(lambda: sim.messages_to("4915112345678"))

From the command line: ``python -m tests.whatsapp_sim --help``.
"""
from .graph import FAILURES, GraphError, new_wamid, validate_content
from .notifications import SimUser, meta_json, sign
from .simulator import SimulatorThread, WhatsAppSimulator

__all__ = ["FAILURES", "GraphError", "SimUser", "SimulatorThread", "WhatsAppSimulator", "meta_json", "new_wamid",
           "sign", "validate_content"]

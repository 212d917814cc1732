"""Fixtures of the channel tests (tests/channels)."""
from __future__ import annotations

import pytest


# --- WhatsApp -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def whatsapp_sim(running_stack, whatsapp_sim_port):
    """The WhatsApp Cloud API simulator on the port the running stack's gateway sends to, delivering
    its webhooks to that gateway (in a background thread: tests call it as plain functions)."""
    from tests.conftest import WHATSAPP_TEST_SETTINGS
    from tests.whatsapp_sim import SimulatorThread, WhatsAppSimulator

    sim = WhatsAppSimulator(webhook_url=running_stack.url + "/webhooks/whatsapp/webhook",
                            app_secret=WHATSAPP_TEST_SETTINGS["WHATSAPP_APP_SECRET"],
                            access_token=WHATSAPP_TEST_SETTINGS["WHATSAPP_ACCESS_TOKEN"],
                            phone_number_id=WHATSAPP_TEST_SETTINGS["WHATSAPP_PHONE_NUMBER_ID"],
                            verify_token=WHATSAPP_TEST_SETTINGS["WHATSAPP_VERIFY_TOKEN"])
    thread = SimulatorThread(sim, port=whatsapp_sim_port)
    try:
        yield thread
    finally:
        thread.close()

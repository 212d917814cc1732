"""RATE_LIMIT_WHATSAPP_PER_MINUTE through the simulator and the real gateway: a number that sends faster
than the limit is answered by the bot up to it; the rest is stored (status rate_limited, nothing lost,
nothing sent to Rasa) and the customer is told once, in its language; another number is unaffected."""
from __future__ import annotations

from bot.i18n import t
from bot.ratelimit import LIMITER

from ..conftest import SteppedClock
from .test_whatsapp_channel import wa, wait_idle, wait_until, whatsapp_gateway


async def test_a_number_over_the_limit_is_stored_told_once_and_not_answered(tmp_path):
    async with whatsapp_gateway(tmp_path, rate_limit_whatsapp_per_minute=3) as gw:
        gw.app[LIMITER].clock = SteppedClock(1_800_000_000.0)  # all seven in one minute, however slow
        user, other = wa(), wa()
        for i in range(6):
            await gw.sim.send_text(user, f"Frage Nummer {i}: wo ist mein Paket?")
        await gw.sim.send_text(other, "Where is my parcel?")
        await wait_until(lambda: len(gw.rasa.received) == 4, what="three questions and the other number's")
        notice = t("rate_limited", "de")
        await wait_until(lambda: any(m["payload"].get("text", {}).get("body") == notice
                                     for m in gw.sim.messages_to(user)), what="the slow-down notice")
        await wait_idle(gw, "the answers and notices to be done")
        asked = [r["message"] for r in gw.rasa.received]
        assert [q for q in asked if q.startswith("Frage")] == [f"Frage Nummer {i}: wo ist mein Paket?" for i in range(3)]
        assert "Where is my parcel?" in asked
        inbound = gw.rows(user, "in")
        assert len(inbound) == 6  # every message stored
        assert [r["delivery_status"] for r in inbound[3:]] == ["rate_limited"] * 3
        notices = [m for m in gw.sim.messages_to(user) if m["payload"].get("text", {}).get("body") == notice]
        assert len(notices) == 1  # told once a minute, not once per message

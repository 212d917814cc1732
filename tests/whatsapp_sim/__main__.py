"""python -m tests.whatsapp_sim --port N --webhook URL --app-secret S --access-token T --phone-number-id P

Runs the WhatsApp Cloud API simulator: point the gateway's WHATSAPP_API_BASE_URL at
http://127.0.0.1:N and the simulator's --webhook at the gateway's /webhooks/whatsapp/webhook.
Then, for example:

  curl -s -XPOST localhost:N/_sim/inbound -d '{"from": "4915112345678", "text": "Hallo"}'
  curl -s localhost:N/_sim/messages?to=4915112345678
  curl -s -XPOST localhost:N/_sim/fail -d '{"count": 2, "kind": "500"}'
  curl -s -XPOST localhost:N/_sim/verify
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal

from .simulator import WhatsAppSimulator


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    ap = argparse.ArgumentParser(prog="python -m tests.whatsapp_sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--webhook", default="http://127.0.0.1:8080/webhooks/whatsapp/webhook",
                    help="the gateway's WhatsApp webhook URL")
    ap.add_argument("--app-secret", default=env.get("WHATSAPP_APP_SECRET", ""),
                    help="signs the notifications (X-Hub-Signature-256)")
    ap.add_argument("--access-token", default=env.get("WHATSAPP_ACCESS_TOKEN", ""),
                    help="the Bearer token the Graph API accepts")
    ap.add_argument("--phone-number-id", default=env.get("WHATSAPP_PHONE_NUMBER_ID", ""))
    ap.add_argument("--verify-token", default=env.get("WHATSAPP_VERIFY_TOKEN"),
                    help="used by POST /_sim/verify (Meta's 'Verify and save')")
    ap.add_argument("--display-phone-number", default="15550001234")
    args = ap.parse_args(argv)
    missing = [n for n in ("app_secret", "access_token", "phone_number_id") if not getattr(args, n)]
    if missing:
        ap.error("missing " + ", ".join("--" + n.replace("_", "-") for n in missing))
    sim = WhatsAppSimulator(webhook_url=args.webhook, app_secret=args.app_secret, access_token=args.access_token,
                            phone_number_id=args.phone_number_id, verify_token=args.verify_token,
                            display_phone_number=args.display_phone_number)

    async def run() -> None:
        await sim.start(args.host, args.port)
        print(f"WhatsApp Cloud API simulator on http://{args.host}:{sim.port} -> webhook {args.webhook}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

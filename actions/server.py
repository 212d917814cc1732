"""The action server: rasa-sdk's webhook plus the live knowledge base.

    python -m actions.server [--host 127.0.0.1] [--port 5055]

Adds ``GET /ready`` (200 with the snapshot version once the knowledge base is loaded, else 503),
``GET /status`` (when the server started)
and ``GET /search?q=...&lang=de&k=5`` (the knowledge base's best articles with their short answers;
the agent inbox's canned answers go through the gateway to it, so the encoder and the index are
loaded once on the machine) beside rasa-sdk's ``GET /health`` and ``POST /webhook``. The knowledge base follows the published
index snapshot (see knowledge_base.live) without a restart.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from knowledge_base.config import KBSettings, SettingsError

log = logging.getLogger("actions.server")


# The FAQ actions set their slots every turn, most to the value they already have. Rasa stores every
# such event and, on every later message, reads, replays and sends all of them to this server again,
# so a conversation costs more with each turn. For these actions an event that leaves its slot as it
# is changes nothing and is not returned. (Not for form validation or slot-mapping actions: Rasa's
# forms look at which slots the events name.)
SLOT_SETS_MAY_BE_DROPPED = frozenset({"action_answer_from_kb", "action_kb_feedback"})


def without_unchanged_slots(events: list, slots: dict) -> list:
    """``events`` (as returned to Rasa) without the slot events, before any other kind of event,
    that set a slot to the value it already has, by JSON equality (True is not 1, 1 is not 1.0)."""
    current, out, leading = dict(slots), [], True
    for ev in events:
        if leading and isinstance(ev, dict) and ev.get("event") == "slot" and isinstance(ev.get("name"), str):
            name, value = ev["name"], ev.get("value")
            if name in current and _same(current[name], value):
                continue
            current[name] = value
        else:
            leading = False  # anything else may change slots (a reset, a restart): keep all that follows
        out.append(ev)
    return out


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def build_app(settings: KBSettings):
    from rasa_sdk.endpoint import create_app
    from rasa_sdk.executor import ActionExecutor
    from sanic import response

    class SelectiveDomainExecutor(ActionExecutor):
        """Rasa 3.6 with selective domain sends no domain (and no digest) for our actions, which
        need none; rasa-sdk 3.21 would answer 449 and Rasa 3.6 does not retry. Serve them with the
        last domain seen, or an empty one."""

        def update_and_return_domain(self, payload, action_name):
            if payload.get("domain"):
                self.domain = payload["domain"]
                self.domain_digest = payload.get("domain_digest")
            return self.domain or {}

        async def run(self, action_call, *args, **kwargs):
            result = await super().run(action_call, *args, **kwargs)
            if result is not None and action_call.get("next_action") in SLOT_SETS_MAY_BE_DROPPED:
                # rasa-sdk 3.21: an ActionExecutorRunResult (a pydantic model with .events)
                slots = (action_call.get("tracker") or {}).get("slots") or {}
                result.events = without_unchanged_slots(result.events, slots)
            return result

    from knowledge_base.encoders import load_encoder
    from knowledge_base.live import LiveKnowledgeBase

    from . import runtime

    executor = SelectiveDomainExecutor()
    executor.register_package("actions")
    app = create_app(executor, cors_origins=[])
    started_at = time.time()

    @app.get("/status")
    async def status(_request):
        # When it started: the gateway tells "Rasa had nothing to say" from "the action server
        # was down, or starting, while Rasa called it" (bot.ops.health.action_server_down).
        return response.json({"status": "ok", "started_at": started_at})

    @app.get("/ready")
    async def ready(_request):
        kb = runtime.live()
        if kb is not None and kb.ready:
            s = kb.searcher
            return response.json({"status": "ok", "index_version": s.version,
                                  "articles": len(s.snapshot.articles), "encoder": s.encoder.name})
        reason = (kb.last_error if kb is not None else None) or "knowledge base is loading"
        return response.json({"status": "loading", "reason": reason}, status=503)

    @app.get("/search")
    async def search(request):
        q = (request.args.get("q") or "").strip()[:500]
        lang = (request.args.get("lang") or "").strip()[:8] or None
        try:
            k = max(1, min(10, int(request.args.get("k") or 5)))
        except ValueError:
            return response.json({"error": "k must be a number"}, status=400)
        if not q:
            return response.json({"error": "q is required"}, status=400)
        try:
            searcher = runtime.searcher()
        except runtime.KnowledgeBaseUnavailable as exc:
            return response.json({"error": str(exc)}, status=503)
        # the encoder is CPU work: off the event loop, so Rasa's action calls are not held up
        result = await asyncio.get_running_loop().run_in_executor(None, lambda: searcher.search(q, lang, k))
        return response.json({"version": result.version, "decision": result.decision,
                              "hits": [{**h.to_dict(), "score": round(h.score, 4)} for h in result.hits[:k]]})

    from .kb_admin import register as register_kb_admin

    register_kb_admin(app)  # POST /kb/sync, /kb/try for the editors' workspace (internal token)

    @app.before_server_start
    async def load_kb(app_, _loop):
        def load():
            encoder = load_encoder(settings.encoder, settings.encoder_threads)
            kb = LiveKnowledgeBase(settings.index_dir, encoder, settings.default_locale, settings.encoder_threads)
            runtime.configure(kb, settings)
            kb.refresh()
            kb.start(settings.poll_seconds)
            for enc in (encoder, *list(kb.extra_encoders.values())):  # tokenizers load lazily on first use:
                enc.encode(["warm up"])  # pay it now, not in the first customer's answer or editor's publish

        # Load in the background so /health answers at once and /ready tells the truth meanwhile.
        asyncio.get_running_loop().run_in_executor(None, load)

    @app.after_server_stop
    async def stop_kb(app_, _loop):
        kb = runtime.live()
        if kb is not None:
            kb.stop()

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m actions.server")
    ap.add_argument("--host", default=os.environ.get("ACTION_SERVER_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("ACTION_SERVER_PORT", "5055")))
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.redact import install

    install()  # no emails, phone or order numbers in the logs
    try:
        settings = KBSettings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = build_app(settings)
    app.run(host=args.host, port=args.port, single_process=True, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A WhatsApp Cloud API simulator: Meta's side of the WhatsApp channel, for tests and local trials.

It plays both of Meta's roles:
- the customer's phone, through Meta: builds notifications exactly as Meta sends them (object
  "whatsapp_business_account", entry[].changes[].value with messaging_product, metadata,
  contacts and messages or statuses), signs them with the app secret (X-Hub-Signature-256) and
  POSTs them to the webhook; it can deliver a notification twice, and statuses in any order;
- the Graph API: ``POST /{version}/{phone_number_id}/messages`` with Meta's validation limits,
  error shapes (``{"error": {"message", "type": "OAuthException", "code", "error_subcode"?,
  "error_data"?, "fbtrace_id"}}``) and success body; it enforces the 24-hour customer-service
  window itself (131047, in the send's answer or, per customer, in a "failed" status after
  accepting the send), sends "sent"/"delivered" statuses for what it accepted (echoing
  ``biz_opaque_callback_data``), and can be told to fail the next calls (500, 429/130429,
  131056, 400, or a delay beyond the client's timeout), all of them or those a predicate picks.

Notifications are serialised and signed as Meta does it (escaped-unicode JSON) and can be batched
(many messages and statuses in one POST): notifications.py. Content validation: graph.py.

Everything is recorded: ``requests`` (every Graph call with its answer), ``messages`` (accepted
sends), ``reads`` (mark-as-read calls) and ``webhooks`` (every notification delivered and the
webhook's answer). Control over HTTP (for the command line): see ``control_routes``.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

import aiohttp
from aiohttp import web

from .graph import FAILURES, MAX_CALLBACK_DATA, GraphError, invalid, new_wamid, validate_content
from .notifications import WINDOW_SECONDS, Notifications, SimUser, WebhookDelivery

REENGAGEMENT_DETAILS = ("Message failed to send because more than 24 hours have passed since the customer last "
                        "replied to this number.")


@dataclass
class Failure:
    kind: str
    only: str = "send"  # "send" (message sends), "read" (mark-as-read), "any"
    delay: float = 10.5  # for kind "timeout": just beyond the channel's 10 s send timeout
    accept: bool = True  # for kind "timeout": carry the request out after the delay (the ambiguous case)
    match: Callable[[dict], bool] | None = None  # only calls whose body this accepts


class WhatsAppSimulator(Notifications):
    def __init__(self, *, webhook_url: str, app_secret: str, access_token: str, phone_number_id: str,
                 display_phone_number: str = "15550001234", verify_token: str | None = None,
                 waba_id: str = "102290129340398", status_delay: float = 0.05):
        self.webhook_url = webhook_url
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.verify_token = verify_token
        self.waba_id = waba_id
        self.status_delay = status_delay
        self.users: dict[str, SimUser] = {}
        self.requests: list[dict] = []
        self.messages: list[dict] = []
        self.reads: list[dict] = []
        self.webhooks: list[WebhookDelivery] = []
        self.inbound_ids: set[str] = set()
        self.refused: list[dict] = []  # sends accepted, then failed by a status (131047 via "status")
        self.batch_window = 0.0  # > 0: notifications within this many seconds go out as one POST
        self._batch: list[tuple[dict, asyncio.Future]] = []
        self._billed: set[str] = set()
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.app = self._make_app()

    # --- server ------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages_endpoint)
        app.router.add_routes(self.control_routes())
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http = aiohttp.ClientSession()
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- test controls -------------------------------------------------------------------------

    def user(self, wa_id: str | None, *, name: str | None = None, user_id: str | None = None,
             username: str | None = None) -> SimUser:
        """The simulated customer with this phone number (and/or business-scoped user id)."""
        with self._lock:
            u = self.users.get(wa_id or "") or (self.users.get(user_id) if user_id else None)
            if u is None:
                u = SimUser(wa_id, name or "Test Customer", user_id, username)
            if name:
                u.name = name
            if user_id:
                u.user_id = user_id
            for k in (wa_id, u.user_id):
                if k:
                    self.users[k] = u
            return u

    def fail_next(self, count: int = 1, kind: str = "500", *, only: str = "send", delay: float = 10.5,
                  accept: bool = True, match: Callable[[dict], bool] | None = None) -> None:
        """Fail the next ``count`` Graph calls (those whose JSON body ``match`` accepts, if given): kind
        "500", "503", "429" (130429), "pair_rate_limit" (131056), "400", "401", or "timeout" (answer
        only after ``delay`` seconds; with ``accept`` the message is sent all the same, as when Meta
        is slow rather than down)."""
        if kind != "timeout" and kind not in FAILURES:
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures.extend(Failure(kind, only, delay, accept, match) for _ in range(count))

    def reset_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def messages_to(self, to: str) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m["to"] == to or m.get("user_id") == to or m.get("wa_id") == to]

    def requests_to(self, to: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if (r.get("body") or {}).get("to") == to
                    or (r.get("body") or {}).get("recipient") == to]

    def reads_of(self, wamid: str) -> list[dict]:
        with self._lock:
            return [r for r in self.reads if r["message_id"] == wamid]

    def snapshot(self) -> dict:
        with self._lock:
            return {"messages": list(self.messages), "requests": list(self.requests), "reads": list(self.reads),
                    "webhooks": [{"body": w.body, "status": w.status, "response": w.response, "at": w.at}
                                 for w in self.webhooks]}

    # --- the Graph API -------------------------------------------------------------------------

    def _find_sent(self, wamid: str) -> dict | None:
        with self._lock:
            return next((m for m in self.messages + self.refused if m["id"] == wamid), None)

    # --- the Graph API -------------------------------------------------------------------------

    async def _messages_endpoint(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = {"at": time.time(), "path": request.path, "auth": request.headers.get("Authorization"),
                  "body": body if isinstance(body, dict) else {"raw": raw[:500].decode("utf-8", "replace")}}
        try:
            result = await self._handle_messages(request, raw, body, record)
            status, payload = 200, result
        except GraphError as exc:
            status, payload = exc.http_status, exc.body()
        record.update(status=status, response=payload)
        with self._lock:
            self.requests.append(record)
        return web.json_response(payload, status=status)

    def _take_failure(self, is_read: bool, body: dict) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if (f.only == "any" or (f.only == "read") == is_read) and (f.match is None or f.match(body)):
                    return self._failures.pop(i)
        return None

    async def _handle_messages(self, request: web.Request, raw: bytes, body, record: dict) -> dict:
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise GraphError(400, 104, "An access token is required to request this resource.")
        if not auth.startswith("Bearer ") or not hmac.compare_digest(auth[7:].encode(), self.access_token.encode()):
            raise GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.match_info["phone_number_id"] != self.phone_number_id:
            raise GraphError(400, 100, f"Unsupported post request. Object with ID "
                                       f"'{request.match_info['phone_number_id']}' does not exist, cannot be loaded due "
                                       "to missing permissions, or does not support this operation.", subcode=33)
        if not isinstance(body, dict):
            raise invalid("The request body is not a JSON object.")
        if body.get("messaging_product") != "whatsapp":
            raise GraphError(400, 100, "(#100) The parameter messaging_product is required.")
        record["version"] = request.match_info["version"]
        is_read = body.get("status") == "read"
        failure = self._take_failure(is_read, body)
        if failure is not None:
            record["injected"] = failure.kind
            if failure.kind == "timeout":
                # Slow, not down: the request is carried out after the delay (shielded from the
                # client going away), so a client that retries blindly sends it twice.
                task = self._spawn(self._delayed(failure, request, raw, body, record))
                return await asyncio.shield(task)
            http_status, code, message, details = FAILURES[failure.kind]
            raise GraphError(http_status, code, message, details=details)
        return self._process(body, record)

    async def _delayed(self, failure: Failure, request, raw, body, record) -> dict:
        await asyncio.sleep(failure.delay)
        if not failure.accept:
            raise GraphError(500, 131000, "Something went wrong", details="Simulated timeout (not carried out).")
        try:
            return self._process(body, record)
        except GraphError:
            raise

    def _process(self, body: dict, record: dict) -> dict:
        if body.get("status") == "read":
            return self._mark_read(body)
        to, recipient = body.get("to"), body.get("recipient")
        if not (isinstance(to, str) and to) and not (isinstance(recipient, str) and recipient):
            raise GraphError(400, 100, "(#100) The parameter to is required.")
        recipient_type = body.get("recipient_type", "individual")
        if recipient_type != "individual":
            raise invalid("recipient_type must be 'individual'.")
        cb = body.get("biz_opaque_callback_data")
        if cb is not None and (not isinstance(cb, str) or len(cb) > MAX_CALLBACK_DATA):
            raise invalid(f"biz_opaque_callback_data must be a string of at most {MAX_CALLBACK_DATA} characters.")
        kind = body.get("type", "text")
        validate_content(kind, body)
        key = to if isinstance(to, str) and to else recipient
        u = self.users.get(key)
        window_closed = kind != "template" and (u is None or u.window_closed or u.last_inbound is None
                                                or time.time() - u.last_inbound > WINDOW_SECONDS)
        if window_closed and (u is None or u.reengagement_via != "status"):
            raise GraphError(400, 131047, "(#131047) Re-engagement message", details=REENGAGEMENT_DETAILS,
                             title="Re-engagement message")
        wamid = new_wamid()
        contact = {"input": key}
        if isinstance(to, str) and to:
            contact["wa_id"] = (u.wa_id if u else None) or to
        else:
            contact["user_id"] = recipient
        sent = {"id": wamid, "to": key, "wa_id": u.wa_id if u else None, "user_id": u.user_id if u else None,
                "type": kind, "payload": body, "at": time.time(), "biz_opaque_callback_data": cb,
                "version": record.get("version")}
        record["wamid"] = wamid
        if window_closed:  # accepted, then refused in a status webhook, as Meta often does
            with self._lock:
                self.refused.append(sent)
            self._spawn(self._refuse_later(wamid))
        else:
            with self._lock:
                self.messages.append(sent)
            if u is not None and u.auto_statuses:
                self._spawn(self._auto_statuses(wamid, u.auto_statuses))
        out_msg = {"id": wamid}
        if kind in ("template", "interactive"):
            out_msg["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [out_msg]}

    def _mark_read(self, body: dict) -> dict:
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or message_id not in self.inbound_ids:
            raise invalid("message_id must be the id of a message received from the customer.")
        typing = body.get("typing_indicator")
        if typing is not None and (not isinstance(typing, dict) or typing.get("type") != "text"):
            raise invalid("typing_indicator.type must be 'text'.")
        with self._lock:
            self.reads.append({"message_id": message_id, "typing": typing is not None, "at": time.time()})
        return {"success": True}

    async def _refuse_later(self, wamid: str) -> None:
        await asyncio.sleep(self.status_delay)
        await self.deliver(self.status_notification(wamid, "failed", errors=[{
            "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
            "error_data": {"details": REENGAGEMENT_DETAILS},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]))

    async def _auto_statuses(self, wamid: str, statuses: tuple[str, ...]) -> None:
        for status in statuses:
            await asyncio.sleep(self.status_delay)
            await self.deliver(self.status_notification(wamid, status))

    # --- control over HTTP ---------------------------------------------------------------------

    def control_routes(self) -> list[web.RouteDef]:
        """GET  /_sim/messages[?to=]   accepted sends        GET /_sim/requests   every Graph call
        GET  /_sim/reads               mark-as-read calls    GET /_sim/webhooks   notifications sent
        POST /_sim/inbound  {"from", "text"? | "message"?: {type...}, "name"?, "user_id"?, "copies"?, "timestamp"?}
        POST /_sim/statuses {"message_id", "statuses": [...], "errors"?}
        POST /_sim/fail     {"count", "kind", "only"?, "delay"?, "accept"?}
        POST /_sim/window   {"user", "closed": bool}
        POST /_sim/verify   {"verify_token"?} -> runs Meta's verification handshake against the webhook
        POST /_sim/reset"""
        return [web.get("/_sim/messages", self._c_messages), web.get("/_sim/requests", self._c_requests),
                web.get("/_sim/reads", self._c_reads), web.get("/_sim/webhooks", self._c_webhooks),
                web.post("/_sim/inbound", self._c_inbound), web.post("/_sim/statuses", self._c_statuses),
                web.post("/_sim/fail", self._c_fail), web.post("/_sim/window", self._c_window),
                web.post("/_sim/verify", self._c_verify), web.post("/_sim/reset", self._c_reset),
                web.get("/_sim/", self._c_health)]

    async def _c_health(self, request):
        return web.json_response({"status": "ok", "webhook": self.webhook_url})

    async def _c_messages(self, request):
        to = request.query.get("to")
        return web.json_response(self.messages_to(to) if to else self.snapshot()["messages"],
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _c_requests(self, request):
        return web.json_response(self.snapshot()["requests"], dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _c_reads(self, request):
        return web.json_response(self.snapshot()["reads"])

    async def _c_webhooks(self, request):
        return web.json_response(self.snapshot()["webhooks"], dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _c_inbound(self, request):
        b = await request.json()
        kw = {k: b[k] for k in ("name", "user_id", "username", "timestamp", "copies", "context") if k in b}
        content = b.get("message") or {"type": "text", "text": {"body": b.get("text", "")}}
        wamid, statuses = await self.send_message(b.get("from"), content, **kw)
        return web.json_response({"message_id": wamid, "webhook_statuses": statuses})

    async def _c_statuses(self, request):
        b = await request.json()
        return web.json_response({"webhook_statuses": await self.send_statuses(b["message_id"], b["statuses"],
                                                                                 errors=b.get("errors"))})

    async def _c_fail(self, request):
        b = await request.json()
        try:
            self.fail_next(int(b.get("count", 1)), b.get("kind", "500"), only=b.get("only", "send"),
                           delay=float(b.get("delay", 10.5)), accept=bool(b.get("accept", True)))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _c_window(self, request):
        b = await request.json()
        self.user(b["user"]).window_closed = bool(b.get("closed", True))
        return web.json_response({"ok": True})

    async def _c_verify(self, request):
        b = await request.json() if request.can_read_body else {}
        return web.json_response(await self.verify_webhook(b.get("verify_token")))

    async def _c_reset(self, request):
        with self._lock:
            for records in (self.requests, self.messages, self.refused, self.reads, self.webhooks, self._failures):
                records.clear()
        return web.json_response({"ok": True})

    async def verify_webhook(self, verify_token: str | None = None) -> dict:
        """What Meta does when you click "Verify and save": GET the webhook with a challenge."""
        challenge = str(secrets.randbelow(10 ** 9))
        params = {"hub.mode": "subscribe", "hub.verify_token": verify_token or self.verify_token or "",
                  "hub.challenge": challenge}
        assert self._http is not None
        async with self._http.get(self.webhook_url, params=params) as resp:
            text = await resp.text()
            return {"status": resp.status, "body": text, "verified": resp.status == 200 and text == challenge}



class SimulatorThread:
    """Runs a WhatsAppSimulator on its own event loop in a background thread, with blocking
    wrappers for tests written as plain functions."""

    def __init__(self, sim: WhatsAppSimulator, host: str = "127.0.0.1", port: int = 0):
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="whatsapp-sim", daemon=True)
        self._thread.start()
        self.call(sim.start(host, port))

    def call(self, coro, timeout: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.call(self.sim.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __getattr__(self, name):
        """Coroutine methods of the simulator become blocking calls; everything else passes through."""
        attr = getattr(self.sim, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **kw: self.call(attr(*a, **kw))
        return attr

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)


def from_env(**overrides) -> WhatsAppSimulator:  # pragma: no cover - convenience for scripts
    env = os.environ
    kw = dict(webhook_url=env.get("WHATSAPP_SIM_WEBHOOK", "http://127.0.0.1:8080/webhooks/whatsapp/webhook"),
              app_secret=env.get("WHATSAPP_APP_SECRET", ""), access_token=env.get("WHATSAPP_ACCESS_TOKEN", ""),
              phone_number_id=env.get("WHATSAPP_PHONE_NUMBER_ID", ""), verify_token=env.get("WHATSAPP_VERIFY_TOKEN"))
    kw.update(overrides)
    return WhatsAppSimulator(**kw)

"""A WhatsApp Cloud API simulator: Meta's side of the WhatsApp channel, for tests and local trials.

It plays both of Meta's roles:
- the customer's phone, through Meta: builds notifications exactly as Meta sends them (object
  "whatsapp_business_account", entry[].changes[].value with messaging_product, metadata,
  contacts and messages or statuses), signs them with the app secret (X-Hub-Signature-256) and
  POSTs them to the webhook; it can deliver a notification twice, and statuses in any order;
- the Graph API: ``POST /{version}/{phone_number_id}/messages`` with Meta's validation limits,
  error shapes (``{"error": {"message", "type": "OAuthException", "code", "error_subcode"?,
  "error_data"?, "fbtrace_id"}}``) and success body; it enforces the 24-hour customer-service
  window itself (131047), sends "sent"/"delivered" statuses for what it accepted (echoing
  ``biz_opaque_callback_data``), and can be told to fail the next calls (500, 429/130429,
  131056, 400, or a delay beyond the client's timeout).

Everything is recorded: ``requests`` (every Graph call with its answer), ``messages`` (accepted
sends), ``reads`` (mark-as-read calls) and ``webhooks`` (every notification delivered and the
webhook's answer). Control over HTTP (for the command line): see ``control_routes``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

WINDOW_SECONDS = 24 * 3600

# Meta's limits
MAX_TEXT_BODY = 4096
MAX_INTERACTIVE_BODY = 1024
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10
MAX_ROW_TITLE = 24
MAX_ROW_ID = 200
MAX_ROW_DESCRIPTION = 72
MAX_SECTION_TITLE = 24
MAX_LIST_BUTTON = 20
MAX_HEADER_FOOTER = 60
MAX_CALLBACK_DATA = 512


def new_wamid() -> str:
    return "wamid.HBgM" + base64.b64encode(secrets.token_bytes(27)).decode()


def fbtrace_id() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=")


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphError(Exception):
    def __init__(self, http_status: int, code: int, message: str, *, subcode: int | None = None,
                 details: str | None = None, title: str | None = None):
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.subcode, self.details, self.title = subcode, details, title

    def body(self) -> dict:
        err: dict = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.details:
            err["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        err["fbtrace_id"] = fbtrace_id()
        return {"error": err}


def invalid(details: str) -> GraphError:
    return GraphError(400, 100, "(#100) Invalid parameter", details=details)


# The failures tests can ask for (``fail_next``): kind -> (HTTP status, code, message, details).
FAILURES = {
    "500": (500, 131000, "Something went wrong", "Message failed to send because of an unknown error."),
    "503": (503, 133004, "Server temporarily unavailable", "The server is temporarily unavailable."),
    "429": (429, 130429, "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached."),
    "pair_rate_limit": (400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                        "Too many messages sent from the sender phone number to the same recipient phone number "
                        "in a short period of time."),
    "400": (400, 100, "(#100) Invalid parameter", "Simulated invalid request."),
    "401": (401, 190, "Invalid OAuth access token - Cannot parse access token", None),
}


@dataclass
class SimUser:
    wa_id: str | None
    name: str = "Test Customer"
    user_id: str | None = None  # business-scoped user id (BSUID)
    username: str | None = None
    last_inbound: float | None = None  # epoch seconds of the customer's latest message
    window_closed: bool = False  # force 131047 whatever the timestamps say
    auto_statuses: tuple[str, ...] = ("sent", "delivered")

    @property
    def key(self) -> str:
        return self.user_id or self.wa_id or ""


@dataclass
class Failure:
    kind: str
    only: str = "send"  # "send" (message sends), "read" (mark-as-read), "any"
    delay: float = 10.5  # for kind "timeout": just beyond the channel's 10 s send timeout
    accept: bool = True  # for kind "timeout": carry the request out after the delay (the ambiguous case)


@dataclass
class WebhookDelivery:
    body: dict
    status: int | None
    response: str
    at: float
    signature: str | None = None


class WhatsAppSimulator:
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
                  accept: bool = True) -> None:
        """Fail the next ``count`` Graph calls: kind "500", "503", "429" (130429), "pair_rate_limit"
        (131056), "400", "401", or "timeout" (answer only after ``delay`` seconds; with ``accept``
        the message is sent all the same, as when Meta is slow rather than down)."""
        if kind != "timeout" and kind not in FAILURES:
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures.extend(Failure(kind, only, delay, accept) for _ in range(count))

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

    # --- the customer's side: notifications ----------------------------------------------------

    def envelope(self, value: dict) -> dict:
        return {"object": "whatsapp_business_account", "entry": [{"id": self.waba_id, "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": self.display_phone_number,
                                   "phone_number_id": self.phone_number_id}, **value},
            "field": "messages"}]}]}

    def _contact(self, u: SimUser) -> dict:
        profile: dict = {"name": u.name}
        if u.username:
            profile["username"] = u.username
        c: dict = {"profile": profile}
        if u.wa_id:
            c["wa_id"] = u.wa_id
        if u.user_id:
            c["user_id"] = u.user_id
        return c

    def message_notification(self, wa_id: str | None, content: dict, *, name: str | None = None,
                             user_id: str | None = None, username: str | None = None, timestamp: float | None = None,
                             wamid: str | None = None, context: str | None = None) -> tuple[str, dict]:
        """A customer's message as Meta notifies it (``content``: {"type": ..., <type>: {...}}).
        Opens (or extends) the customer's 24-hour window at ``timestamp``."""
        u = self.user(wa_id, name=name, user_id=user_id, username=username)
        ts = time.time() if timestamp is None else timestamp
        with self._lock:
            u.last_inbound = ts if u.last_inbound is None else max(u.last_inbound, ts)
        wamid = wamid or new_wamid()
        with self._lock:
            self.inbound_ids.add(wamid)
        msg: dict = {}
        if u.wa_id:
            msg["from"] = u.wa_id
        if u.user_id:
            msg["from_user_id"] = u.user_id
        msg.update({"id": wamid, "timestamp": str(int(ts))})
        if context:
            msg["context"] = {"from": self.display_phone_number, "id": context}
        msg.update(content)
        return wamid, self.envelope({"contacts": [self._contact(u)], "messages": [msg]})

    async def deliver(self, body: dict | bytes, *, signature: str | None | bool = True,
                      headers: dict | None = None, timeout: float = 30.0) -> tuple[int | None, str]:
        """POST a notification to the webhook, signed like Meta signs it (``signature=False``: no
        header; a string: that header value). Returns the webhook's HTTP status and body."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        sig = sign(self.app_secret, raw) if signature is True else (signature or None)
        hdrs = {"Content-Type": "application/json", "User-Agent": "facebookexternalua", **(headers or {})}
        if sig:
            hdrs["X-Hub-Signature-256"] = sig
        assert self._http is not None, "start() the simulator first"
        try:
            async with self._http.post(self.webhook_url, data=raw, headers=hdrs,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status, text = None, f"{type(exc).__name__}: {exc}"
        parsed = body if isinstance(body, dict) else {"raw": raw[:200].decode("utf-8", "replace")}
        with self._lock:
            self.webhooks.append(WebhookDelivery(parsed, status, text[:500], time.time(), sig))
        return status, text

    async def send_message(self, wa_id: str | None, content: dict, *, copies: int = 1, **kw) -> tuple[str, list]:
        """The customer sends a message; Meta notifies the webhook (``copies`` times: Meta delivers
        at least once). Returns (wamid, [webhook statuses])."""
        wamid, body = self.message_notification(wa_id, content, **kw)
        results = [await self.deliver(body) for _ in range(copies)]
        return wamid, [s for s, _ in results]

    async def send_text(self, wa_id: str | None, text: str, **kw) -> tuple[str, list]:
        return await self.send_message(wa_id, {"type": "text", "text": {"body": text}}, **kw)

    async def press_button(self, wa_id: str | None, reply_id: str, title: str, *, context: str | None, **kw):
        return await self.send_message(wa_id, {"type": "interactive", "interactive": {
            "type": "button_reply", "button_reply": {"id": reply_id, "title": title}}}, context=context, **kw)

    async def choose_row(self, wa_id: str | None, row_id: str, title: str, *, context: str | None,
                         description: str | None = None, **kw):
        reply = {"id": row_id, "title": title}
        if description:
            reply["description"] = description
        return await self.send_message(wa_id, {"type": "interactive", "interactive": {
            "type": "list_reply", "list_reply": reply}}, context=context, **kw)

    async def template_button(self, wa_id: str | None, payload: str, text: str, *, context: str | None = None, **kw):
        return await self.send_message(wa_id, {"type": "button", "button": {"payload": payload, "text": text}},
                                       context=context, **kw)

    async def send_media(self, wa_id: str | None, kind: str = "image", *, caption: str | None = None, **kw):
        if kind == "location":
            content = {"type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Somewhere"}}
        elif kind == "unsupported":
            content = {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown",
                                                          "message": "Message type unknown",
                                                          "error_data": {"details": "Message type is not currently "
                                                                                    "supported"}}]}
        else:
            media = {"id": str(secrets.randbelow(10 ** 15)), "mime_type": {"image": "image/jpeg",
                                                                           "audio": "audio/ogg; codecs=opus",
                                                                           "video": "video/mp4",
                                                                           "sticker": "image/webp",
                                                                           "document": "application/pdf"}.get(
                kind, "application/octet-stream"), "sha256": secrets.token_hex(32)}
            if caption and kind in ("image", "video", "document"):
                media["caption"] = caption
            if kind == "audio":
                media["voice"] = True
            content = {"type": kind, kind: media}
        return await self.send_message(wa_id, content, **kw)

    def status_notification(self, wamid: str, status: str, *, recipient: str | None = None,
                            timestamp: float | None = None, errors: list | None = None,
                            callback: str | None = None) -> dict:
        record = self._find_sent(wamid)
        to = recipient or (record or {}).get("to") or ""
        st: dict = {"id": wamid, "status": status, "timestamp": str(int(timestamp or time.time())),
                    "recipient_id": to}
        u = self.users.get(to)
        if u is not None and u.user_id:
            st["recipient_user_id"] = u.user_id
        if status != "failed":
            st["conversation"] = {"id": hashlib.md5(to.encode()).hexdigest(),
                                  "origin": {"type": "service"}}
            if status == "sent":
                st["conversation"]["expiration_timestamp"] = str(int(time.time()) + WINDOW_SECONDS)
            st["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}
        if errors:
            st["errors"] = errors
        cb = callback if callback is not None else (record or {}).get("biz_opaque_callback_data")
        if cb:
            st["biz_opaque_callback_data"] = cb
        value: dict = {"statuses": [st]}
        if status != "failed" and u is not None:
            value["contacts"] = [self._contact(u)]
        return self.envelope(value)

    async def send_statuses(self, wamid: str, statuses: list[str], *, errors: list | None = None) -> list:
        """Deliver status notifications for a sent message, one notification each, in this order."""
        out = []
        for status in statuses:
            body = self.status_notification(wamid, status, errors=errors if status == "failed" else None)
            out.append((await self.deliver(body))[0])
        return out

    def _find_sent(self, wamid: str) -> dict | None:
        with self._lock:
            return next((m for m in self.messages if m["id"] == wamid), None)

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

    def _take_failure(self, is_read: bool) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if f.only == "any" or (f.only == "read") == is_read:
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
        is_read = body.get("status") == "read"
        failure = self._take_failure(is_read)
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
        if kind != "template":
            if u is None or u.window_closed or u.last_inbound is None or time.time() - u.last_inbound > WINDOW_SECONDS:
                raise GraphError(400, 131047, "(#131047) Re-engagement message",
                                 details="Message failed to send because more than 24 hours have passed since the "
                                         "customer last replied to this number.", title="Re-engagement message")
        wamid = new_wamid()
        contact = {"input": key}
        if isinstance(to, str) and to:
            contact["wa_id"] = (u.wa_id if u else None) or to
        else:
            contact["user_id"] = recipient
        sent = {"id": wamid, "to": key, "wa_id": u.wa_id if u else None, "user_id": u.user_id if u else None,
                "type": kind, "payload": body, "at": time.time(), "biz_opaque_callback_data": cb}
        with self._lock:
            self.messages.append(sent)
        record["wamid"] = wamid
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
            for records in (self.requests, self.messages, self.reads, self.webhooks, self._failures):
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


def validate_content(kind: str, body: dict) -> None:
    """Meta's validation of a message's content (the subset this project sends, and then some)."""
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"].strip():
            raise GraphError(400, 100, "(#100) The parameter text['body'] is required.")
        if len(text["body"]) > MAX_TEXT_BODY:
            raise invalid(f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long.")
    elif kind == "interactive":
        _validate_interactive(body.get("interactive"))
    elif kind == "template":
        tpl = body.get("template")
        if not isinstance(tpl, dict) or not tpl.get("name") or not isinstance(tpl.get("language"), dict):
            raise GraphError(400, 100, "(#100) The parameter template['name'] is required.")
    elif kind in ("image", "audio", "video", "document", "sticker"):
        media = body.get(kind)
        if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
            raise invalid(f"Param {kind} must have an id or a link.")
    elif kind == "reaction":
        if not isinstance(body.get("reaction"), dict):
            raise invalid("Param reaction is required.")
    else:
        raise invalid(f"Param type '{kind}' is not a valid message type.")


def _len_check(value, limit: int, what: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{what} is required and cannot be empty.")
    if len(value) > limit:
        raise invalid(f"{what} length invalid. Min length: 1, Max length: {limit}")


def _validate_interactive(inter) -> None:
    if not isinstance(inter, dict):
        raise GraphError(400, 100, "(#100) The parameter interactive is required.")
    itype = inter.get("type")
    body = inter.get("body")
    if itype in ("button", "list"):
        if not isinstance(body, dict):
            raise GraphError(400, 100, "(#100) The parameter interactive['body'] is required.")
        _len_check(body.get("text"), MAX_INTERACTIVE_BODY, "Body text")
    for part in ("header", "footer"):
        if part in inter:
            p = inter[part]
            if not isinstance(p, dict):
                raise invalid(f"interactive['{part}'] must be an object.")
            if part == "footer" or p.get("type") == "text":
                _len_check(p.get("text"), MAX_HEADER_FOOTER, f"{part.capitalize()} text")
    action = inter.get("action")
    if not isinstance(action, dict):
        raise GraphError(400, 100, "(#100) The parameter interactive['action'] is required.")
    if itype == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            raise GraphError(400, 100, "(#100) The parameter interactive['action']['buttons'] is required.")
        if len(buttons) > MAX_BUTTONS:
            raise invalid(f"Buttons count invalid. Min count: 1, Max count: {MAX_BUTTONS}")
        ids, titles = set(), set()
        for b in buttons:
            if not isinstance(b, dict) or b.get("type") != "reply" or not isinstance(b.get("reply"), dict):
                raise invalid("Each button must be {\"type\": \"reply\", \"reply\": {\"id\", \"title\"}}.")
            _len_check(b["reply"].get("title"), MAX_BUTTON_TITLE, "Button title")
            _len_check(b["reply"].get("id"), MAX_BUTTON_ID, "Button id")
            if b["reply"]["id"] in ids or b["reply"]["title"] in titles:
                raise invalid("Button ids and titles must be unique within the message.")
            ids.add(b["reply"]["id"])
            titles.add(b["reply"]["title"])
    elif itype == "list":
        _len_check(action.get("button"), MAX_LIST_BUTTON, "Button label")
        sections = action.get("sections")
        if not isinstance(sections, list) or not sections:
            raise GraphError(400, 100, "(#100) The parameter interactive['action']['sections'] is required.")
        if len(sections) > MAX_LIST_SECTIONS:
            raise invalid(f"Sections count invalid. Min count: 1, Max count: {MAX_LIST_SECTIONS}")
        rows_total, ids = 0, set()
        for section in sections:
            if not isinstance(section, dict) or not isinstance(section.get("rows"), list) or not section["rows"]:
                raise invalid("Each section needs at least one row.")
            _len_check(section.get("title"), MAX_SECTION_TITLE, "Section title", required=len(sections) > 1)
            for row in section["rows"]:
                if not isinstance(row, dict):
                    raise invalid("Each row must be an object.")
                _len_check(row.get("id"), MAX_ROW_ID, "Row id")
                _len_check(row.get("title"), MAX_ROW_TITLE, "Row title")
                _len_check(row.get("description"), MAX_ROW_DESCRIPTION, "Row description", required=False)
                if row["id"] in ids:
                    raise invalid("Row ids must be unique within the message.")
                ids.add(row["id"])
                rows_total += 1
        if rows_total > MAX_LIST_ROWS:
            raise invalid(f"Total row count exceed max allowed count: {MAX_LIST_ROWS}")
    elif itype in ("cta_url", "location_request_message", "flow", "product", "product_list", "catalog_message"):
        pass
    else:
        raise invalid(f"Param interactive['type'] '{itype}' is not valid.")


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

"""The customer's side of the simulator (a mixin of WhatsAppSimulator, simulator.py): notifications
built, serialised, signed and delivered as Meta does it.

- Meta serialises with every non-ASCII character escaped (``\\u00fc``, surrogate pairs for emoji)
  and slashes escaped (``\\/``), and signs those bytes; so does ``meta_json``.
- Meta batches: up to 1000 updates (customer messages and statuses) in one POST. ``batch`` merges
  notifications into one; with ``batch_window`` > 0 everything delivered within that many seconds
  (automatic statuses included) goes out as one POST.
- Status payloads carry only what Meta sends: ``conversation`` and ``pricing`` with "sent" and the
  first of "delivered"/"read" (``conversation`` not at all from Graph API v24.0 on), ``errors`` only
  with "failed", ``biz_opaque_callback_data`` only when the send had it.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import aiohttp

from .graph import new_wamid

WINDOW_SECONDS = 24 * 3600


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def meta_json(body: dict) -> bytes:
    """A notification's bytes as Meta sends (and signs) them: compact, ASCII only, slashes escaped."""
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


@dataclass
class SimUser:
    wa_id: str | None
    name: str = "Test Customer"
    user_id: str | None = None  # business-scoped user id (BSUID)
    username: str | None = None
    last_inbound: float | None = None  # epoch seconds of the customer's latest message
    window_closed: bool = False  # force 131047 whatever the timestamps say
    reengagement_via: str = "response"  # 131047 in the send's answer, or "status": accepted, then a failed status
    auto_statuses: tuple[str, ...] = ("sent", "delivered")

    @property
    def key(self) -> str:
        return self.user_id or self.wa_id or ""


@dataclass
class WebhookDelivery:
    body: dict
    status: int | None
    response: str
    at: float
    signature: str | None = None


def _version_number(version: str | None) -> float:
    try:
        return float((version or "v23.0").lstrip("v"))
    except ValueError:
        return 23.0


class Notifications:
    """Needs from the simulator: webhook_url, app_secret, waba_id, display_phone_number, phone_number_id,
    users, user(), inbound_ids, webhooks, batch_window, _lock, _http, _spawn, _find_sent, _billed."""

    def envelope(self, value: dict) -> dict:
        return {"object": "whatsapp_business_account", "entry": [{"id": self.waba_id, "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": self.display_phone_number,
                                   "phone_number_id": self.phone_number_id}, **value},
            "field": "messages"}]}]}

    @staticmethod
    def batch(notifications: list[dict], *, one_value: bool = False) -> dict:
        """Several notifications as one, the way Meta batches them: every change in one entry, or with
        ``one_value`` every message, contact and status in the lists of one change's value."""
        entries = [e for n in notifications for e in n["entry"]]
        changes = [c for e in entries for c in e["changes"]]
        if one_value and changes:
            value = {k: v for k, v in changes[0]["value"].items() if k not in ("contacts", "messages", "statuses")}
            for key in ("contacts", "messages", "statuses"):
                items = [item for c in changes for item in c["value"].get(key) or []]
                if key == "contacts":
                    items = list({json.dumps(i, sort_keys=True): i for i in items}.values())
                if items:
                    value[key] = items
            changes = [{"value": value, "field": "messages"}]
        return {"object": "whatsapp_business_account", "entry": [{"id": entries[0]["id"], "changes": changes}]}

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

    def status_notification(self, wamid: str, status: str, *, recipient: str | None = None,
                            timestamp: float | None = None, errors: list | None = None,
                            callback: str | None = None) -> dict:
        record = self._find_sent(wamid) or {}
        to = recipient or record.get("to") or ""
        st: dict = {"id": wamid, "status": status, "timestamp": str(int(timestamp or time.time())),
                    "recipient_id": to}
        u = self.users.get(to)
        if u is not None and u.user_id:
            st["recipient_user_id"] = u.user_id
        cb = callback if callback is not None else record.get("biz_opaque_callback_data")
        if cb:
            st["biz_opaque_callback_data"] = cb
        if status == "sent" or (status in ("delivered", "read") and self._bill_once(wamid)):
            if _version_number(record.get("version")) < 24:
                st["conversation"] = {"id": hashlib.md5(to.encode()).hexdigest(), "origin": {"type": "service"}}
                if status == "sent":
                    st["conversation"]["expiration_timestamp"] = str(int(time.time()) + WINDOW_SECONDS)
            st["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service",
                             "type": "free_customer_service"}
        if errors:
            st["errors"] = errors
        value: dict = {"statuses": [st]}
        if status != "failed" and u is not None:
            value["contacts"] = [self._contact(u)]
        return self.envelope(value)

    def _bill_once(self, wamid: str) -> bool:
        """Meta prices a message with "sent" and with one of "delivered" or "read", whichever comes first."""
        with self._lock:
            first = wamid not in self._billed
            self._billed.add(wamid)
        return first

    async def deliver(self, body: dict | bytes, *, signature: str | None | bool = True,
                      headers: dict | None = None, timeout: float = 30.0) -> tuple[int | None, str]:
        """POST a notification to the webhook, serialised and signed like Meta does (``signature=False``:
        no header; a string: that header value). Returns the webhook's HTTP status and body (of the
        batch it went out in, with ``batch_window``)."""
        if isinstance(body, dict) and self.batch_window > 0 and signature is True and not headers:
            return await self._deliver_batched(body, timeout)
        return await self._post(body, signature, headers, timeout)

    async def _post(self, body: dict | bytes, signature: str | None | bool, headers: dict | None,
                    timeout: float) -> tuple[int | None, str]:
        raw = body if isinstance(body, bytes) else meta_json(body)
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

    async def _deliver_batched(self, body: dict, timeout: float) -> tuple[int | None, str]:
        answer = asyncio.get_running_loop().create_future()
        with self._lock:
            self._batch.append((body, answer))
            first = len(self._batch) == 1
        if first:
            self._spawn(self._flush_batch(timeout))
        return await answer

    async def _flush_batch(self, timeout: float) -> None:
        await asyncio.sleep(self.batch_window)
        with self._lock:
            pending, self._batch = self._batch, []
        result = await self._post(self.batch([b for b, _ in pending]), True, None, timeout)
        for _, answer in pending:
            if not answer.done():
                answer.set_result(result)

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

    async def react(self, wa_id: str | None, message_id: str, emoji: str = "👍", **kw):
        """The customer reacts to one of the business's messages (an empty emoji takes it back)."""
        return await self.send_message(wa_id, {"type": "reaction", "reaction": {"message_id": message_id,
                                                                               "emoji": emoji}}, **kw)

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

    async def send_statuses(self, wamid: str, statuses: list[str], *, errors: list | None = None) -> list:
        """Deliver status notifications for a sent message, one notification each, in this order."""
        out = []
        for status in statuses:
            body = self.status_notification(wamid, status, errors=errors if status == "failed" else None)
            out.append((await self.deliver(body))[0])
        return out

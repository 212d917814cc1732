"""WhatsApp Cloud API formats: parsing of webhook notifications, signature checks, Graph errors and
the Graph API client (rendering of replies: whatsapp_render.py). No state of the gateway (see whatsapp.py)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp

log = logging.getLogger(__name__)


NAME = "whatsapp"
WEBHOOK_PATH = "/webhooks/whatsapp/webhook"

SERVICE_WINDOW = timedelta(hours=24)

# Outbound calls.
SEND_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
READ_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=3)
MAX_SEND_ATTEMPTS = 4  # for errors other than rate limits (5xx, timeouts, dropped connections)
BACKOFF_SECONDS = 0.5  # doubled after every attempt, with jitter
CONFIRM_GRACE_SECONDS = 3.0  # outcome unknown: how long to wait for a status webhook before retrying
# Rate limits are retried until WhatsAppSettings.rate_limit_retry_seconds have passed, as Meta advises:
# the pair rate limit (131056) after 4^X * RATE_LIMIT_BACKOFF_SECONDS (X = 0, 1, 2, ... per refusal),
# throughput limits after 2^X of it (at most MAX_THROUGHPUT_WAIT_SECONDS).
RATE_LIMIT_BACKOFF_SECONDS = 1.0
MAX_THROUGHPUT_WAIT_SECONDS = 60.0
# Meta lets a business send one message every 6 seconds to the same customer, with bursts that borrow
# from later: after a 131056 the customer's next messages go out this far apart.
PAIR_RATE_SECONDS = 6.0
PAIR_PACING_SECONDS = 300.0  # how long that pacing lasts after the last 131056

# Inbound processing.
MAX_CONCURRENT_CONVERSATIONS = 8
STOP_TIMEOUT_SECONDS = 8.0
RECOVERY_WAIT_FOR_RASA_SECONDS = 60.0

# Graph error codes.
CODE_REENGAGEMENT = 131047  # more than 24 hours since the customer's last message
CODE_THROUGHPUT = 130429  # the phone number's throughput was reached
CODE_PAIR_RATE_LIMIT = 131056  # too many messages to the same customer
CODE_AUTH = 190
# Too many calls: the app (4), the business account (80007), the number's throughput (130429) or its
# throughput being upgraded (131057, up to a minute).
THROUGHPUT_CODES = {4, 80007, CODE_THROUGHPUT, 131057}
RETRYABLE_CODES = {1, 2, 131000, 131016, 133004, CODE_PAIR_RATE_LIMIT} | THROUGHPUT_CODES
ERROR_KINDS = {
    CODE_REENGAGEMENT: "outside_24h_window",
    **{code: "rate_limited" for code in THROUGHPUT_CODES},
    CODE_PAIR_RATE_LIMIT: "pair_rate_limited",
    CODE_AUTH: "auth_failed",
    100: "invalid_request",
    131026: "undeliverable",
    131051: "unsupported_message_type",
    131000: "server_error",
}
# After one of these, the other messages of the same batch cannot be delivered either.
BATCH_FATAL_KINDS = {"outside_24h_window", "auth_failed"}

INBOUND_RECEIVED = "received"
INBOUND_PROCESSED = "processed"
INBOUND_RATE_LIMITED = "rate_limited"  # stored, not answered by the bot (RATE_LIMIT_WHATSAPP_PER_MINUTE)

# Message types nobody answers. A customer's reaction (or disappearing message) still opens the 24-hour
# window (Meta: "when a WhatsApp user messages you"), so the channel records when it came; system
# notices (a changed number) and "request_welcome" are WhatsApp's, not the customer's.
WINDOW_ONLY_TYPES = {"reaction", "ephemeral"}
IGNORED_TYPES = {"system", "request_welcome"}

# Phone country codes -> language, used only when a first message has no text to detect.
COUNTRY_LANGUAGE = {"49": "de", "43": "de", "41": "de", "423": "de", "90": "tr", "81": "ja"}
_BSUID = re.compile(r"^[A-Z]{2}\.")


# --- inbound parsing ------------------------------------------------------------------------

@dataclass
class WaMessage:
    wamid: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    username: str | None
    timestamp: int | None
    type: str
    text: str = ""
    unsupported: bool = False
    window_only: bool = False  # not answered, not stored as a message: it only opens the 24-hour window
    context_id: str | None = None
    reply_id: str | None = None
    reply_title: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def source_id(self) -> str:
        return self.user_id or self.wa_id or ""


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


# A sender's phone number (wa_id, digits) or business-scoped user id: a BSUID is a country code, a dot and
# up to 128 letters and digits ("US.13491208655302741918", 131 characters at most), a parent BSUID has
# "ENT." after the country code. Up to 255 (the identity column) so a longer id Meta may send is kept.
_ID = re.compile(r"^[A-Za-z0-9.+_:=-]{1,255}$")


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def parse_notification(body: dict, phone_number_id: str) -> tuple[list[WaMessage], list[dict]]:
    """Customer messages and statuses addressed to our phone number, in order."""
    messages: list[WaMessage] = []
    statuses: list[dict] = []
    if body.get("object") != "whatsapp_business_account":
        return messages, statuses
    for entry in body.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field", "messages") != "messages":
                continue
            value = change.get("value")
            if not isinstance(value, dict) or value.get("messaging_product", "whatsapp") != "whatsapp":
                continue
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            if str(metadata.get("phone_number_id")) != phone_number_id:
                log.info("whatsapp: ignoring a notification for phone number id %r", metadata.get("phone_number_id"))
                continue
            for err in value.get("errors") or []:
                log.warning("whatsapp: error notification: %s", err)
            contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
            for m in value.get("messages") or []:
                if isinstance(m, dict):
                    parsed = _parse_message(m, contacts)
                    if parsed is not None:
                        messages.append(parsed)
            statuses.extend(s for s in value.get("statuses") or [] if isinstance(s, dict))
    return messages, statuses


def _parse_message(m: dict, contacts: list[dict]) -> WaMessage | None:
    wamid = _str(m.get("id"))
    wa_id = _str(m.get("from"))
    user_id = _str(m.get("from_user_id"))
    contact = next((c for c in contacts if (wa_id and c.get("wa_id") == wa_id)
                    or (user_id and c.get("user_id") == user_id)), contacts[0] if len(contacts) == 1 else {})
    wa_id = wa_id or _str(contact.get("wa_id"))
    user_id = user_id or _str(contact.get("user_id"))
    if not wamid or len(wamid) > 255 or not (wa_id or user_id) or not all(
            _ID.match(x) for x in (wa_id, user_id) if x):
        log.warning("whatsapp: ignoring a message without a valid id or sender")
        return None
    profile = _dict(contact.get("profile"))
    kind = _str(m.get("type")) or "unknown"
    out = WaMessage(wamid=wamid, wa_id=wa_id, user_id=user_id, name=(_str(profile.get("name")) or "")[:200] or None,
                    username=(_str(profile.get("username")) or "")[:100] or None, timestamp=_int(m.get("timestamp")),
                    type=kind[:40])
    context = _dict(m.get("context"))
    out.context_id = _str(context.get("id"))
    out.meta = {"wa_type": kind, "wa_id": wa_id, "user_id": user_id, "wa_timestamp": out.timestamp,
                "context_id": out.context_id}
    if kind == "text":
        out.text = (_str(_dict(m.get("text")).get("body")) or "").replace("\x00", "")
        if not out.text.strip():
            log.info("whatsapp: empty text message %s ignored", wamid)
            return None
    elif kind == "interactive":
        inter = _dict(m.get("interactive"))
        sub = inter.get("type")
        reply = inter.get(sub) if sub in ("button_reply", "list_reply") else None
        if isinstance(reply, dict) and _str(reply.get("id")):
            out.reply_id, out.reply_title = reply["id"][:1000], (_str(reply.get("title")) or "")[:100] or None
            out.meta.update(wa_reply_type=sub, reply_id=reply["id"], reply_title=out.reply_title)
        else:
            out.unsupported = True
            out.meta["wa_interactive_type"] = sub
    elif kind == "button":  # a template's quick-reply button
        button = _dict(m.get("button"))
        payload, label = _str(button.get("payload")), _str(button.get("text"))
        if payload or label:
            out.text = payload or label or ""
            out.meta.update(wa_reply_type="template_button", reply_title=label)
        else:
            out.unsupported = True
    elif kind in WINDOW_ONLY_TYPES:
        out.window_only = True
        reaction = _dict(m.get("reaction"))
        if _str(reaction.get("message_id")):
            out.meta.update(reaction_to=reaction["message_id"][:255], emoji=(_str(reaction.get("emoji")) or "")[:16])
    elif kind in IGNORED_TYPES:
        log.info("whatsapp: %s message %s from %s ignored", kind, wamid, out.source_id)
        return None
    else:  # image, audio, video, document, sticker, location, contacts, order, unsupported, ...
        out.unsupported = True
        part = _dict(m.get(kind))
        if _str(part.get("caption")):
            out.meta["caption"] = part["caption"][:1024]
        if _str(part.get("id")):
            out.meta["media_id"] = part["id"][:100]
    out.text = out.text.replace("\x00", "")
    return out


def country_language(wa_id: str | None) -> str | None:
    if not wa_id:
        return None
    for length in (3, 2):
        lang = COUNTRY_LANGUAGE.get(wa_id[:length])
        if lang:
            return lang
    return None


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


# --- Graph API client -----------------------------------------------------------------------

@dataclass
class ApiResult:
    ok: bool
    http_status: int | None = None  # None: no answer (timeout, connection error)
    body: dict | None = None
    code: int | None = None
    error: dict | None = None
    kind: str | None = None
    retryable: bool = False
    ambiguous: bool = False  # the request may have been carried out although we saw no success
    wamid: str | None = None
    confirmed_by_webhook: bool = False
    attempts: int = 1

    def error_meta(self) -> dict:
        detail = {"http_status": self.http_status, "code": self.code}
        if self.error:
            for k in ("message", "type", "error_subcode", "fbtrace_id", "error_data"):
                if k in self.error:
                    detail[k] = self.error[k]
        return {"error": self.kind, "error_detail": detail}


def classify(http_status: int | None, error: dict | None) -> tuple[str, bool, bool]:
    """(kind, retryable, ambiguous) of a failed call."""
    code = _int((error or {}).get("code"))
    if http_status is None:
        return "timeout", True, True
    if code in ERROR_KINDS and code != 131000:
        kind = ERROR_KINDS[code]
    elif http_status >= 500:
        kind = "server_error"
    elif http_status == 429:
        kind = "rate_limited"
    elif http_status == 401:
        kind = "auth_failed"
    elif code is not None:
        kind = f"graph_error_{code}"
    else:
        kind = f"http_{http_status}"
    retryable = http_status >= 500 or http_status == 429 or code in RETRYABLE_CODES
    if code in (CODE_REENGAGEMENT, CODE_AUTH, 100):
        retryable = False
    return kind, retryable, http_status >= 500


class GraphClient:
    def __init__(self, settings, session: aiohttp.ClientSession):
        self.url = f"{settings.api_base_url}/{settings.api_version}/{settings.phone_number_id}/messages"
        self.session = session
        self.headers = {"Authorization": f"Bearer {settings.access_token}", "Content-Type": "application/json"}

    async def post(self, payload: dict, timeout: aiohttp.ClientTimeout = SEND_TIMEOUT) -> ApiResult:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            async with self.session.post(self.url, data=data, headers=self.headers, timeout=timeout) as resp:
                raw = await resp.read()
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                if not isinstance(body, dict):
                    body = {}
                if 200 <= resp.status < 300:
                    msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
                    wamid = _str(msgs[0].get("id")) if msgs and isinstance(msgs[0], dict) else None
                    return ApiResult(True, resp.status, body, wamid=wamid)
                error = body.get("error") if isinstance(body.get("error"), dict) else {"message": raw[:300].decode(
                    "utf-8", "replace")}
                kind, retryable, ambiguous = classify(resp.status, error)
                return ApiResult(False, resp.status, body, _int(error.get("code")), error, kind, retryable, ambiguous)
        except asyncio.TimeoutError:
            return ApiResult(False, None, kind="timeout", retryable=True, ambiguous=True,
                             error={"message": f"no answer within {timeout.total} s"})
        except aiohttp.ClientConnectorError as exc:  # the request never left: safe to retry
            return ApiResult(False, None, kind="connection_error", retryable=True, ambiguous=False,
                             error={"message": str(exc)[:300]})
        except aiohttp.ClientError as exc:  # dropped mid-request: it may have been carried out
            return ApiResult(False, None, kind="connection_error", retryable=True, ambiguous=True,
                             error={"message": f"{type(exc).__name__}: {exc}"[:300]})



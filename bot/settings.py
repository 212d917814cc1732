"""Every setting of the product, in one place.

Values come from environment variables; a settings file (``SETTINGS_FILE``, default ``.env`` in the
project folder when present) can provide them as ``KEY=value`` lines, and the environment wins.
Everything is validated at start; a bad value stops the process with a message naming the key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from knowledge_base.config import PROJECT_ROOT, KBSettings, SettingsError

# name -> (default, description). README.md documents each one (a test checks that).
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "SETTINGS_FILE": (".env", "Optional file of KEY=value lines read before the environment (the environment wins)."),
    "GATEWAY_HOST": ("127.0.0.1", "Address the gateway listens on (use 0.0.0.0 behind a load balancer)."),
    "GATEWAY_PORT": ("8080", "Port of the gateway, the only public service."),
    "DATABASE_URL": ("sqlite+aiosqlite:///var/gateway.db",
                     "Gateway database (SQLAlchemy URL): SQLite by default, postgresql+asyncpg://... to scale out."),
    "RASA_URL": ("http://127.0.0.1:5005", "Where the gateway reaches the Rasa server."),
    "RASA_TIMEOUT_SECONDS": ("10", "Timeout of one call to Rasa."),
    "RASA_RETRIES": ("2", "Retries of a call to Rasa that could not connect (with backoff)."),
    "RASA_HOST": ("127.0.0.1", "Address `make run` binds the Rasa server to (keep it private)."),
    "RASA_PORT": ("5005", "Port `make run` starts the Rasa server on."),
    "RASA_TRACKER_STORE_URL": ("sqlite:///var/rasa_tracker.db",
                               "Rasa tracker store: sqlite:///path or postgresql://user@host:port/db."),
    "RASA_LOCK_STORE_URL": ("", "Rasa lock store: empty for in-memory (one Rasa), redis://host:port/db for several."),
    "ACTION_SERVER_URL": ("http://127.0.0.1:5055", "Where Rasa and the gateway reach the action server."),
    "ACTION_SERVER_HOST": ("127.0.0.1", "Address `make run` binds the action server to."),
    "ACTION_SERVER_PORT": ("5055", "Port `make run` starts the action server on."),
    "BOT_LANGUAGES": ("en,de,tr,ja", "Languages the assistant detects and answers in (comma-separated)."),
    "MAX_MESSAGE_CHARS": ("4000", "Longest customer message accepted; longer ones get HTTP 413."),
    "LOG_LEVEL": ("INFO", "Log level of every process."),
    "VAR_DIR": ("var", "Folder for run-time state of `make run`: logs, generated Rasa endpoints, default databases."),
    "PUBLIC_URL": ("", "The gateway's public base URL (used in the widget snippet and links); empty: derived from the request."),
    "WIDGET_IDENTITY_SECRET": ("", "Secret for the widget's identity verification: a site passes user_id with "
                                   "user_hash = HMAC-SHA256(secret, user_id) in hex. Empty: signed identities are refused."),
    "WIDGET_ALLOWED_ORIGINS": ("*", "Comma-separated origins allowed to open the widget's WebSocket ('*' = any)."),
    "WHATSAPP_VERIFY_TOKEN": ("", "WhatsApp webhook verification token (the channel is off unless all four "
                                  "WHATSAPP_VERIFY_TOKEN, WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID are set)."),
    "WHATSAPP_APP_SECRET": ("", "Meta app secret: verifies X-Hub-Signature-256 on every webhook."),
    "WHATSAPP_ACCESS_TOKEN": ("", "Bearer token for the WhatsApp Cloud API."),
    "WHATSAPP_PHONE_NUMBER_ID": ("", "The business phone number id messages are sent from."),
    "WHATSAPP_API_BASE_URL": ("https://graph.facebook.com", "Base URL of the Graph API (a simulator's URL in tests)."),
    "WHATSAPP_API_VERSION": ("v23.0", "Graph API version used in send calls."),
    "BUSINESS_HOURS": ("Mon-Fri 08:00-20:00; Sat 10:00-16:00",
                       "When people answer hand-offs: day ranges and times separated by ';' (e.g. "
                       "'Mon-Fri 08:00-20:00; Sat 10:00-16:00'), or 'always'. Outside them the customer is told "
                       "and the request is queued as a ticket."),
    "BUSINESS_TIMEZONE": ("Europe/Berlin", "Time zone of BUSINESS_HOURS (an IANA name such as Europe/Berlin)."),
    "OUTGOING_WEBHOOK_URL": ("", "URL that receives conversation events (handed off, assigned, resolved, handed back) "
                                 "as signed JSON POSTs; empty: none are sent."),
    "OUTGOING_WEBHOOK_SECRET": ("", "Secret of the outgoing webhook's X-Signature-256 (HMAC-SHA256 of the raw body); "
                                    "required when OUTGOING_WEBHOOK_URL is set."),
    "INBOX_SESSION_HOURS": ("12", "How long an agent stays signed in to the inbox without using it (hours)."),
    "KB_ARTICLES_DIR": ("data/knowledge_base", "Folder of the knowledge-base articles (Markdown with front matter): "
                                               "imported into the gateway database once, while it has no articles "
                                               "(then the editors' workspace is the source of truth)."),
    "KB_INDEX_DIR": ("var/index", "Folder of the index snapshots (CURRENT points at the published one)."),
    "KB_ENCODER": ("use-multilingual",
                   "Sentence encoder: use-multilingual (packaged USE-m v3), minilm (packaged all-MiniLM-L6-v2) "
                   "or st:<sentence-transformers model name or path>."),
    "KB_ENCODER_THREADS": ("1", "Threads of the encoder (1 is fastest for one query at a time on small machines)."),
    "KB_DEFAULT_LOCALE": ("en", "Locale answered when an article has no translation in the customer's language."),
    "KB_CALIBRATION_FILE": ("data/eval/sample_validation.jsonl",
                            "Labelled questions the answer/clarify/hand-off thresholds are calibrated on "
                            "('none' to keep the defaults)."),
    "KB_SNAPSHOT_POLL_SECONDS": ("1.0", "How often the action server looks for a newer published index snapshot."),
    "KB_RETRIEVAL": ("hybrid", "hybrid: both encoders + BM25 + a per-article classifier, fused (measured best; README "
                               "'Retrieval'); dense: the primary encoder alone through FAISS."),
    "KB_SECONDARY_ENCODER": ("minilm", "Second encoder of hybrid retrieval (weighted for English questions): minilm, "
                                       "minilm-int8 (int8-quantised: 5.6 vs 10.6 ms per query, banking77 10-shot top-1 "
                                       ".854 vs .862, CLINC in-scope accuracy .858 vs .909) or st:<model name or path>."),
    "KB_HYBRID_MAX_ENTRIES": ("50000", "Above this many index entries the knowledge base uses dense retrieval "
                                       "(FAISS, approximate) instead of hybrid scoring of every entry."),
    "KB_CLASSIFIER_MAX_ARTICLES": ("500", "The per-article classifier is trained only up to this many articles "
                                           "(translation groups): retraining it on every publish costs more above that (bench/kb_search.py)."),
    # the editors' workspace (bot/editor)
    "EDITOR_REQUIRE_APPROVAL": ("true", "Publishing an article needs an approval of its latest version by a second "
                                        "editor (true/false). Admins may publish without one only explicitly "
                                        "(force), and that is audited."),
    "INTERNAL_TOKEN": ("", "Shared secret of the gateway's calls to the action server's internal /kb routes "
                           "(publishing); empty: generated once into VAR_DIR/internal_token."),
    "RATE_LIMIT_SENDER_PER_MINUTE": ("30", "Messages one REST sender id may send per minute; more get HTTP 429 with "
                                           "Retry-After (the widget has its own per-socket limit). 0: no limit."),
    "RATE_LIMIT_WHATSAPP_PER_MINUTE": ("20", "Messages one WhatsApp number may send per minute before the bot stops "
                                             "answering it for the rest of the minute (the messages are stored; the "
                                             "customer is told once, in its language). 0: no limit."),
    "RATE_LIMIT_IP_PER_MINUTE": ("0", "Requests to the REST endpoints one IP address may make per minute; 0: no "
                                      "limit (the default: behind a load balancer every customer shares its address)."),
    "RETENTION_DAYS": ("0", "Delete conversations (and their Rasa tracker events) whose last message is older than this "
                            "many days and that no person is working on; checked hourly. 0: keep forever."),
    "SURVEY": ("csat", "Satisfaction survey after an agent resolves a conversation: csat (1-5, then an optional "
                       "comment), csat,nps (NPS 0-10 in between) or off."),
    "SURVEY_HOURS": ("24", "A survey question waits this many hours for its answer; later messages go to the bot."),
    "SENTIMENT": ("on", "Tag every customer message with its sentiment and severity (on/off), in the background "
                        "through the action server (knowledge_base/sentiment.py)."),
    "RETURNING_DAYS": ("30", "A customer whose previous conversation ended less than this many days ago is greeted "
                             "with its topic (\"Last time you asked about ... Is this about that?\"); 0: never."),
    "EVENT_BROKER_URL": ("", "amqp://user:password@host:5672/ of a RabbitMQ the event stream is published to (and "
                             "Rasa's own tracker events); empty: the stream is only the event_stream table "
                             "(GET /api/admin/events)."),
    "EVENT_BROKER_QUEUE": ("support_events", "The durable queue the gateway publishes the event stream to."),
    "RASA_EVENT_QUEUE": ("rasa_events", "The queue Rasa's pika event broker publishes its tracker events to "
                                        "(EVENT_BROKER_URL set)."),
    "REDIS_PREFIX": ("selfservice", "Prefix of this deployment's Redis channel (several deployments may share one Redis)."),
    "REDIS_URL": ("", "redis://host:port/db shared by several gateway replicas: rate limits hold across them and "
                      "the inbox's and the widget's real-time events reach every replica (bot/fanout.py); "
                      "empty: in-process (one gateway)."),
}


def read_settings_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise SettingsError(f"{path}:{lineno}: expected KEY=value")
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[7:].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if env is None else env)
    file_name = env.get("SETTINGS_FILE")
    path = Path(file_name) if file_name else PROJECT_ROOT / ".env"
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    if file_name and not path.is_file():
        raise SettingsError(f"SETTINGS_FILE points at {path}, which does not exist")
    merged = read_settings_file(path) if path.is_file() else {}
    merged.update(env)
    return merged


def _get(env: dict, key: str) -> str:
    val = env.get(key)
    return SETTINGS_DOC[key][0] if val in (None, "") else val


def _port(env: dict, key: str) -> int:
    raw = _get(env, key)
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a port number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{key} must be between 0 and 65535, got {port}")
    return port


def _positive(env: dict, key: str, kind=float):
    raw = _get(env, key)
    try:
        val = kind(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    if val < 0:
        raise SettingsError(f"{key} must not be negative, got {raw!r}")
    return val


def _http_url(env: dict, key: str) -> str:
    raw = _get(env, key).rstrip("/")
    u = urlparse(raw)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise SettingsError(f"{key} must be an http(s) URL, got {raw!r}")
    return raw


def _sqlite_relative_to_project(url: str) -> str:
    """sqlite URLs with a relative path are relative to the project folder, not the current one."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            rest = url[len(prefix):]
            if rest and not rest.startswith("/") and rest != ":memory:":
                return prefix + str(PROJECT_ROOT / rest)
    return url


def _project_path(raw: str) -> Path:
    p = Path(raw)
    return p if p.is_absolute() else PROJECT_ROOT / p


def _public_url(env: dict) -> str:
    raw = env.get("PUBLIC_URL", "").rstrip("/")
    if raw:
        u = urlparse(raw)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise SettingsError(f"PUBLIC_URL must be an http(s) URL, got {raw!r}")
    return raw


def _handoff_settings(env: dict) -> dict:
    from .handoff.hours import BusinessHours

    hours, tz = _get(env, "BUSINESS_HOURS"), _get(env, "BUSINESS_TIMEZONE")
    try:
        BusinessHours.parse(hours, tz)
    except ValueError as exc:
        key = "BUSINESS_TIMEZONE" if "time zone" in str(exc) else "BUSINESS_HOURS"
        raise SettingsError(f"{key}: {exc}") from None
    url = env.get("OUTGOING_WEBHOOK_URL", "").strip()
    secret = env.get("OUTGOING_WEBHOOK_SECRET", "")
    if url:
        url = _http_url(env, "OUTGOING_WEBHOOK_URL")
        if not secret:
            raise SettingsError("OUTGOING_WEBHOOK_SECRET must be set when OUTGOING_WEBHOOK_URL is set "
                                "(every event is signed with it)")
    hours_idle = float(_positive(env, "INBOX_SESSION_HOURS"))
    if hours_idle <= 0:
        raise SettingsError("INBOX_SESSION_HOURS must be more than 0")
    return {"business_hours": hours, "business_timezone": tz, "outgoing_webhook_url": url,
            "outgoing_webhook_secret": secret, "inbox_session_hours": hours_idle}


def _editor_settings(env: dict) -> dict:
    raw = _get(env, "EDITOR_REQUIRE_APPROVAL").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"EDITOR_REQUIRE_APPROVAL must be true or false, got {raw!r}")
    return {"editor_require_approval": raw in ("true", "1", "yes"),
            "internal_token": env.get("INTERNAL_TOKEN", "").strip()}


def _limit_settings(env: dict) -> dict:
    redis_url = env.get("REDIS_URL", "").strip()
    if redis_url and not redis_url.startswith(("redis://", "rediss://")):
        raise SettingsError(f"REDIS_URL must be empty or redis://host:port/db, got {redis_url!r}")
    prefix = _get(env, "REDIS_PREFIX").strip()
    if not prefix or len(prefix) > 64 or not all(c.isalnum() or c in "-_.:" for c in prefix):
        raise SettingsError("REDIS_PREFIX must be 1-64 letters, digits or - _ . :")
    return {"redis_prefix": prefix,
            "rate_limit_sender_per_minute": int(_positive(env, "RATE_LIMIT_SENDER_PER_MINUTE", int)),
            "rate_limit_ip_per_minute": int(_positive(env, "RATE_LIMIT_IP_PER_MINUTE", int)),
            "rate_limit_whatsapp_per_minute": int(_positive(env, "RATE_LIMIT_WHATSAPP_PER_MINUTE", int)),
            "redis_url": redis_url,
            "retention_days": int(_positive(env, "RETENTION_DAYS", int)),
            **_survey_settings(env)}


def _survey_settings(env: dict) -> dict:
    from .surveys import SURVEY_KINDS

    kind = ",".join(x.strip() for x in _get(env, "SURVEY").lower().split(",") if x.strip())
    if kind not in SURVEY_KINDS:
        raise SettingsError(f"SURVEY must be one of {', '.join(SURVEY_KINDS)}, got {kind!r}")
    hours = float(_positive(env, "SURVEY_HOURS"))
    if hours <= 0:
        raise SettingsError("SURVEY_HOURS must be more than 0")
    broker = env.get("EVENT_BROKER_URL", "").strip()
    if broker:
        u = urlparse(broker)
        if u.scheme not in ("amqp", "amqps") or not u.hostname:
            raise SettingsError(f"EVENT_BROKER_URL must be empty or amqp://user:password@host:port/, got {u.scheme}://...")
    queues = {}
    for key in ("EVENT_BROKER_QUEUE", "RASA_EVENT_QUEUE"):
        q = _get(env, key).strip()
        if not q or len(q) > 200:
            raise SettingsError(f"{key} must be a queue name of 1-200 characters")
        queues[key.lower()] = q
    return {"survey": kind, "survey_hours": hours, "event_broker_url": broker, **queues,
            "returning_days": int(_positive(env, "RETURNING_DAYS", int)),
            "sentiment": _switch(env, "SENTIMENT")}


def _switch(env: dict, key: str) -> bool:
    raw = _get(env, key).strip().lower()
    if raw not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{key} must be on or off, got {raw!r}")
    return raw in ("on", "true", "1", "yes")


@dataclass(frozen=True)
class WhatsAppSettings:
    verify_token: str
    app_secret: str
    access_token: str
    phone_number_id: str
    api_base_url: str
    api_version: str

    @classmethod
    def from_env(cls, env: dict) -> "WhatsAppSettings | None":
        keys = ("WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID")
        present = [k for k in keys if env.get(k)]
        if not present:
            return None
        if len(present) != len(keys):
            missing = [k for k in keys if not env.get(k)]
            raise SettingsError(f"WhatsApp is half configured: set {', '.join(missing)} too (or none of {', '.join(keys)})")
        return cls(env["WHATSAPP_VERIFY_TOKEN"], env["WHATSAPP_APP_SECRET"], env["WHATSAPP_ACCESS_TOKEN"],
                   env["WHATSAPP_PHONE_NUMBER_ID"], _http_url(env, "WHATSAPP_API_BASE_URL"),
                   _get(env, "WHATSAPP_API_VERSION"))


@dataclass(frozen=True)
class Settings:
    gateway_host: str
    gateway_port: int
    database_url: str
    rasa_url: str
    rasa_timeout: float
    rasa_retries: int
    rasa_host: str
    rasa_port: int
    rasa_tracker_store_url: str
    rasa_lock_store_url: str
    action_server_url: str
    action_server_host: str
    action_server_port: int
    languages: tuple[str, ...]
    max_message_chars: int
    log_level: str
    var_dir: Path
    public_url: str
    widget_identity_secret: str = field(repr=False)
    widget_allowed_origins: tuple[str, ...]
    whatsapp: WhatsAppSettings | None = field(repr=False)
    kb: KBSettings = field(repr=False)
    business_hours: str = "Mon-Fri 08:00-20:00; Sat 10:00-16:00"
    business_timezone: str = "Europe/Berlin"
    outgoing_webhook_url: str = ""
    outgoing_webhook_secret: str = field(default="", repr=False)
    inbox_session_hours: float = 12.0
    editor_require_approval: bool = True
    internal_token: str = field(default="", repr=False)
    rate_limit_sender_per_minute: int = 30
    rate_limit_ip_per_minute: int = 0
    rate_limit_whatsapp_per_minute: int = 20
    redis_url: str = field(default="", repr=False)
    redis_prefix: str = "selfservice"
    retention_days: int = 0
    survey: str = "csat"
    survey_hours: float = 24.0
    event_broker_url: str = field(default="", repr=False)
    event_broker_queue: str = "support_events"
    rasa_event_queue: str = "rasa_events"
    returning_days: int = 30
    sentiment: bool = True

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = load_environment(env)
        db = _sqlite_relative_to_project(_get(env, "DATABASE_URL"))
        if not (db.startswith("sqlite+aiosqlite://") or db.startswith("postgresql+asyncpg://")):
            raise SettingsError("DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
                                f"got {db!r}")
        tracker = _sqlite_relative_to_project(_get(env, "RASA_TRACKER_STORE_URL"))
        if not (tracker.startswith("sqlite:///") or tracker.startswith("postgresql://")):
            raise SettingsError(f"RASA_TRACKER_STORE_URL must start with sqlite:/// or postgresql://, got {tracker!r}")
        lock = env.get("RASA_LOCK_STORE_URL", "")
        if lock and not lock.startswith("redis://"):
            raise SettingsError(f"RASA_LOCK_STORE_URL must be empty or redis://host:port/db, got {lock!r}")
        languages = tuple(x.strip() for x in _get(env, "BOT_LANGUAGES").split(",") if x.strip())
        if not languages:
            raise SettingsError("BOT_LANGUAGES must name at least one language")
        level = _get(env, "LOG_LEVEL").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        max_chars = int(_positive(env, "MAX_MESSAGE_CHARS", int))
        if max_chars < 1:
            raise SettingsError("MAX_MESSAGE_CHARS must be at least 1")
        return cls(
            gateway_host=_get(env, "GATEWAY_HOST"),
            gateway_port=_port(env, "GATEWAY_PORT"),
            database_url=db,
            rasa_url=_http_url(env, "RASA_URL"),
            rasa_timeout=float(_positive(env, "RASA_TIMEOUT_SECONDS")),
            rasa_retries=int(_positive(env, "RASA_RETRIES", int)),
            rasa_host=_get(env, "RASA_HOST"),
            rasa_port=_port(env, "RASA_PORT"),
            rasa_tracker_store_url=tracker,
            rasa_lock_store_url=lock,
            action_server_url=_http_url(env, "ACTION_SERVER_URL"),
            action_server_host=_get(env, "ACTION_SERVER_HOST"),
            action_server_port=_port(env, "ACTION_SERVER_PORT"),
            languages=languages,
            max_message_chars=max_chars,
            log_level=level,
            var_dir=_project_path(_get(env, "VAR_DIR")),
            public_url=_public_url(env),
            widget_identity_secret=env.get("WIDGET_IDENTITY_SECRET", ""),
            widget_allowed_origins=tuple(o.strip().rstrip("/") for o in _get(env, "WIDGET_ALLOWED_ORIGINS").split(",")
                                         if o.strip()),
            whatsapp=WhatsAppSettings.from_env(env),
            kb=KBSettings.from_env(env),
            **_handoff_settings(env),
            **_editor_settings(env),
            **_limit_settings(env),
        )

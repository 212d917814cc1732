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

from .settings_doc import SETTINGS_DOC  # name -> (default, description); README.md documents each


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


def _http_urls(env: dict, key: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in _get(env, key).split(",") if u.strip())
    for raw in urls:
        u = urlparse(raw)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise SettingsError(f"{key} must be an http(s) URL or several, comma-separated, got {raw!r}")
    if not urls:
        raise SettingsError(f"{key} must be an http(s) URL, got an empty value")
    return urls


def _rasa_servers(env: dict) -> int:
    raw = _get(env, "RASA_SERVERS").strip().lower()
    if raw == "auto":
        return 2 if (os.cpu_count() or 1) >= 2 else 1
    if not raw.isdigit() or not 1 <= int(raw) <= 8:
        raise SettingsError(f"RASA_SERVERS must be auto or a number from 1 to 8, got {raw!r}")
    return int(raw)


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
            "outgoing_webhook_secret": secret, "inbox_session_hours": hours_idle,
            "handoff_form_timeout_seconds": float(_positive(env, "HANDOFF_FORM_TIMEOUT_SECONDS"))}


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
    from .insights.surveys import SURVEY_KINDS

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
    webhook_max_bytes: int
    rate_limit_retry_seconds: float

    @classmethod
    def from_env(cls, env: dict) -> "WhatsAppSettings | None":
        keys = ("WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID")
        present = [k for k in keys if env.get(k)]
        if not present:
            return None
        if len(present) != len(keys):
            missing = [k for k in keys if not env.get(k)]
            raise SettingsError(f"WhatsApp is half configured: set {', '.join(missing)} too (or none of {', '.join(keys)})")
        max_bytes = int(_positive(env, "WHATSAPP_WEBHOOK_MAX_BYTES", int))
        if max_bytes < 64 * 1024:
            raise SettingsError(f"WHATSAPP_WEBHOOK_MAX_BYTES must be at least 65536 (64 KiB), got {max_bytes}")
        return cls(env["WHATSAPP_VERIFY_TOKEN"], env["WHATSAPP_APP_SECRET"], env["WHATSAPP_ACCESS_TOKEN"],
                   env["WHATSAPP_PHONE_NUMBER_ID"], _http_url(env, "WHATSAPP_API_BASE_URL"),
                   _get(env, "WHATSAPP_API_VERSION"), max_bytes,
                   _positive(env, "WHATSAPP_RATE_LIMIT_RETRY_SECONDS"))


@dataclass(frozen=True)
class Settings:
    gateway_host: str
    gateway_port: int
    database_url: str
    rasa_url: str  # the first of rasa_urls
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
    handoff_form_timeout_seconds: float = 180.0
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
    rasa_urls: tuple[str, ...] = ()
    rasa_servers: int = 1

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
            rasa_url=_http_urls(env, "RASA_URL")[0],
            rasa_urls=_http_urls(env, "RASA_URL"),
            rasa_servers=_rasa_servers(env),
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

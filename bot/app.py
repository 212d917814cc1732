"""The gateway application: create_app(settings) returns it; resources live in cleanup_ctx."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from . import keys
from .channels import rest
from .handoff.desk import Desk
from .ops.health import healthz
from .rasa_client import RasaClient
from .ratelimit import limiter_ctx
from .router import Router
from .settings import Settings
from .store.db import make_engine, sessionmaker, upgrade

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


async def _database(app: web.Application):
    settings = app[keys.SETTINGS]
    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    app[keys.ENGINE] = engine
    app[keys.SESSIONMAKER] = sessionmaker(engine)
    yield
    await engine.dispose()


async def _fanout(app: web.Application):
    """Events for every gateway replica (bot.fanout): in-process, or through Redis with REDIS_URL."""
    from .fanout import Fanout

    fanout = Fanout(app[keys.SETTINGS].redis_url, app[keys.SETTINGS].redis_prefix)
    app[keys.FANOUT] = fanout
    await fanout.start()
    yield
    await fanout.stop()


async def _clients(app: web.Application):
    settings = app[keys.SETTINGS]
    rasa = RasaClient(settings.rasa_urls or settings.rasa_url, settings.rasa_timeout, settings.rasa_retries)
    await rasa.start()
    http = aiohttp.ClientSession()
    app[keys.RASA] = rasa
    app[keys.HTTP] = http
    desk = Desk.from_settings(app[keys.SESSIONMAKER], settings)
    desk.channels = app[keys.CHANNELS]  # the inbox reaches customers through the channel registry
    desk.hub.fanout = app[keys.FANOUT]  # the inbox's events reach every replica's agents
    app[keys.FANOUT].on("inbox", desk.hub.publish_local)
    app[keys.ROUTER] = Router(app[keys.SESSIONMAKER], rasa, settings.languages, desk=desk,
                              returning_days=settings.returning_days)
    from .ops.health import action_server_down

    app[keys.ROUTER].why_silent = lambda since: action_server_down(app, since)
    await desk.start()  # the outgoing webhook's sender
    if settings.sentiment:
        from .editor.publishing import client
        from .insights.sentiment import SentimentTagger

        app[keys.ROUTER].sentiment = SentimentTagger(app[keys.SESSIONMAKER], client(app))
    # Load the language detector's models off the event loop before the first message needs them.
    from knowledge_base.language import detect

    await asyncio.get_running_loop().run_in_executor(None, detect, "warm up the detector", None, None,
                                                     settings.languages)
    yield
    if app[keys.ROUTER].sentiment is not None:
        await app[keys.ROUTER].sentiment.stop()
    await desk.stop()
    await rasa.close()
    await http.close()


def channel_classes() -> list:
    """Every channel adapter the gateway knows; each decides from the settings whether it is on."""
    from .channels.webchat import WebchatChannel
    from .channels.whatsapp import WhatsAppChannel

    return [WhatsAppChannel, WebchatChannel]


async def _channels(app: web.Application):
    for channel in app[keys.CHANNELS].values():
        await channel.start()
    yield
    for channel in app[keys.CHANNELS].values():
        await channel.stop()


@web.middleware
async def json_errors(request: web.Request, handler):
    """aiohttp's own refusals (unknown route 404, wrong method 405, body over the limit 413, ...)
    answer an API or webhook caller in the same JSON shape as every other error: {"error": ...}."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(("/api/", "/webhooks/")) \
                or exc.content_type == "application/json":
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return web.json_response({"error": message}, status=exc.status, headers={
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")})


STORE_DOWN_RETRY_SECONDS = 5


def store_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (down, restarting, shutting down, connections lost): not a bug of
    the request. SQLAlchemy wraps the driver's error (a plain DBAPIError around asyncpg's
    CannotConnectNowError while PostgreSQL shuts down), so the whole chain of causes is looked at."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    try:
        import asyncpg

        driver_down: tuple[type[BaseException], ...] = (
            asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError,
            asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError)
    except ImportError:
        driver_down = ()
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OperationalError) or (isinstance(e, DBAPIError) and e.connection_invalidated):
            return True
        if isinstance(e, (ConnectionRefusedError, ConnectionResetError)) or isinstance(e, driver_down):
            return True  # asyncpg connecting to a stopped server, or told the server is going away
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return False


@web.middleware
async def store_errors(request: web.Request, handler):
    """While the database is unreachable, API and webhook callers get 503 with Retry-After instead of a
    500: a retry (the same message_id, WhatsApp's own redelivery) is stored once when it is back."""
    try:
        return await handler(request)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is the store being down
        if not request.path.startswith(("/api/", "/webhooks/")) or not store_unavailable(exc):
            raise
        log.warning("the database is unreachable (%s): %s %s answered 503", type(exc).__name__, request.method,
                    request.path)
        return web.json_response({"error": "the conversation store is unavailable right now; please retry "
                                           "(a retry with the same message_id is stored once)"},
                                 status=503, headers={"Retry-After": str(STORE_DOWN_RETRY_SECONDS)})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors, store_errors])
    app[keys.SETTINGS] = settings
    app[keys.CHANNELS] = {}
    from .deferred import deferred_ctx
    from .handoff.unfinished import unfinished_ctx

    # deferred_ctx: what the assistant could not answer is answered when it is back (bot.deferred);
    # unfinished_ctx: a promised person is not lost when the hand-off form is left unanswered
    app.cleanup_ctx.extend([_database, limiter_ctx, _fanout, _clients, _channels, deferred_ctx, unfinished_ctx])
    app.router.add_routes(rest.routes())
    for cls in channel_classes():
        if cls.enabled(settings):
            channel = cls(app)
            app[keys.CHANNELS][cls.name] = channel
            app.router.add_routes(channel.routes())
    app.router.add_get("/healthz", healthz)
    from .editor import help_pages

    app.router.add_routes(help_pages.routes())  # /help/{locale}/{group}: what the bot's links open
    from .insights import privacy

    app.router.add_routes(privacy.routes())  # /api/admin/contacts/{id}: export and delete (GDPR)
    app.cleanup_ctx.append(privacy.retention_ctx)  # RETENTION_DAYS
    from . import events
    from .insights import dashboard

    app.router.add_routes(dashboard.routes())  # /dashboard and /api/admin/metrics, customer counts

    app.cleanup_ctx.append(events.broker_ctx)  # EVENT_BROKER_URL: the event stream to RabbitMQ
    from .inbox import views as inbox

    inbox.setup(app)  # /inbox and /api/inbox
    from .inbox import identity_views

    app.router.add_routes(identity_views.routes())  # confirm an email (links contacts), admins' merges and undo
    from .editor import routes as editor

    editor.setup(app)  # /api/editor, /api/openapi.json, seeding, live publishing
    return app

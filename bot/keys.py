"""Typed application keys (one module, so every handler names the same objects)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from .rasa_client import RasaClient
from .settings import Settings

if TYPE_CHECKING:
    from .router import Router  # for the type only: the keys stay below everything that uses them

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker)
RASA = web.AppKey("rasa", RasaClient)
ROUTER: web.AppKey[Router] = web.AppKey("router")
HTTP = web.AppKey("http", object)  # aiohttp.ClientSession for health checks
CHANNELS = web.AppKey("channels", dict)  # channel name -> Channel instance (bot.channels.base)
EVENT_PUBLISHER = web.AppKey("event_publisher", object)  # bot.events.BrokerPublisher, or None
FANOUT = web.AppKey("fanout", object)  # bot.fanout.Fanout: events for every gateway replica
DEFERRED = web.AppKey("deferred", object)  # bot.deferred.DeferredAnswers: answers what waited for the assistant

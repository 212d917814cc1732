"""The inbox's real-time hub: every change an agent should see at once (a conversation queued,
claimed, transferred, handed back or resolved; a customer's message; an agent's reply or note;
presence) is published here and fanned out to every signed-in inbox WebSocket of this gateway.

Each replica has its own hub; with ``REDIS_URL`` what one publishes reaches the others through the
fan-out (bot.fanout, topic ``inbox``), so an agent sees every replica's events.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000


class Subscription:
    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    async def get(self) -> dict:
        return await self.queue.get()

    def close(self) -> None:
        self.hub._subs.discard(self)


class Hub:
    def __init__(self):
        self._subs: set[Subscription] = set()
        self.fanout = None  # bot.fanout.Fanout (create_app): the other replicas

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, event: dict) -> None:
        self.publish_local(event)
        if self.fanout is not None:
            self.fanout.send("inbox", event)

    def publish_local(self, event: dict) -> None:
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A socket that does not keep up is told to reload (it re-reads everything).
                sub.overflowed = True
                log.warning("inbox hub: a subscriber fell %d events behind; it will resync", QUEUE_SIZE)

"""Events every gateway replica must see, for the real-time parts that live in one process.

What a replica publishes here reaches its own handlers at once; with ``REDIS_URL`` it is also
published on the Redis channel ``<prefix>:fanout`` and every other replica hands it to its own
handlers. Topics:

- ``inbox``: an event of the inbox hub (a conversation queued, claimed or resolved, a customer's
  message, an agent's reply, typing, ...): every replica's signed-in inbox sockets get it;
- ``webchat.sync``: a widget visitor (contact) has new messages in the database: the replica that
  holds the visitor's sockets sends them (delivery stays database-driven, so nothing is lost when a
  Redis message is: the next sync or the widget's reconnect sends it);
- ``webchat.frame``: a frame for every socket of a contact (the typing indicator).

Redis down: the local part still works, the outage is logged and the subscriber reconnects with
backoff. Without ``REDIS_URL`` (one gateway) nothing leaves the process.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid

from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECONNECT_SECONDS = (0.5, 1, 2, 5)


class Fanout:
    def __init__(self, redis_url: str = "", prefix: str = "selfservice"):
        self.redis_url = redis_url
        self.channel = f"{prefix}:fanout"
        self.replica = uuid.uuid4().hex
        self._handlers: dict[str, list] = {}
        self._redis = None
        self._task: asyncio.Task | None = None
        self._sending: set[asyncio.Task] = set()
        self.ready = asyncio.Event()  # subscribed to Redis (set at once without it)
        self.received = 0

    @property
    def remote(self) -> bool:
        return bool(self.redis_url)

    def on(self, topic: str, handler) -> None:
        """``handler(payload)`` (a function or a coroutine function) for events of ``topic`` from
        other replicas; a replica's own events are handled by the caller directly."""
        self._handlers.setdefault(topic, []).append(handler)

    def send(self, topic: str, payload: dict) -> None:
        """Publish to the other replicas (fire and forget; no-op with one gateway)."""
        if not self.remote:
            return
        task = asyncio.get_running_loop().create_task(self._publish(topic, payload))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, topic: str, payload: dict) -> None:
        data = json.dumps({"origin": self.replica, "topic": topic, "payload": payload}, ensure_ascii=False, default=str)
        for attempt in (1, 2):  # a connection left over from before a Redis restart fails once, then reconnects
            try:
                await self._client().publish(self.channel, data)
                return
            except Exception as exc:  # noqa: BLE001 - the database keeps everything; logged
                if attempt == 2:
                    log.warning("fan-out: publishing %s to Redis failed (%s)", topic, type(exc).__name__)

    def _client(self):
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=3)
        return self._redis

    async def start(self) -> None:
        if not self.remote:
            self.ready.set()
            return
        self._task = asyncio.create_task(self._listen(), name="fan-out subscriber")
        try:
            await asyncio.wait_for(self.ready.wait(), 5)
        except asyncio.TimeoutError:
            log.warning("fan-out: not subscribed to Redis yet; retrying in the background")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=2)
        if self._redis is not None:
            await self._redis.aclose()

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = None
            try:
                pubsub = self._client().pubsub()
                await pubsub.subscribe(self.channel)
                self.ready.set()
                if attempt:
                    log.info("fan-out: subscribed to Redis again")
                attempt = 0
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        await self._dispatch(msg.get("data"))
            except asyncio.CancelledError:
                if pubsub is not None:
                    await pubsub.aclose()
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: reconnect with backoff
                self.ready.clear()
                pause = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning("fan-out: Redis subscription lost (%s); reconnecting in %.1f s", type(exc).__name__, pause)
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except Exception:  # noqa: BLE001
                        pass
                await asyncio.sleep(pause)

    async def _dispatch(self, raw) -> None:
        try:
            event = json.loads(raw)
        except (TypeError, ValueError):
            return
        if not isinstance(event, dict) or event.get("origin") == self.replica:
            return
        self.received += 1
        for handler in self._handlers.get(event.get("topic"), ()):
            try:
                out = handler(event.get("payload"))
                if inspect.isawaitable(out):
                    await out
            except Exception:  # noqa: BLE001 - one handler's failure does not stop the others
                log.exception("fan-out: handling %s failed", event.get("topic"))

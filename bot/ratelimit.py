"""Rate limits on the customer endpoints: a fixed one-minute window per key (a sender, an IP).

- In-process by default; with REDIS_URL, counted in Redis (INCR + EXPIRE on a key per window) so
  the limit holds across gateway replicas. If Redis is unreachable the limiter lets requests
  through and logs it (customers are not locked out by a cache outage); it retries at the next call.
- ``hit(kind, key, limit)`` returns None when allowed, else the seconds until the window ends
  (for Retry-After). A limit of 0 means no limit.
- The windows follow the limiter's ``clock`` (``time.time`` unless given), so a test can step time
  instead of waiting for, or racing, the next minute.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

from aiohttp import web

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
LIMITER = web.AppKey("rate_limiter", object)
MAX_MEMORY_KEYS = 100_000


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._counts: dict[tuple[str, str, int], int] = {}
        self.clock = clock

    async def hit(self, kind: str, key: str, limit: int) -> float | None:
        if limit <= 0:
            return None
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if len(self._counts) > MAX_MEMORY_KEYS:  # drop finished windows
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= window}
        slot = (kind, key, window)
        self._counts[slot] = self._counts.get(slot, 0) + 1
        return None if self._counts[slot] <= limit else _retry_after(now)

    async def close(self) -> None:
        pass


class RedisLimiter:
    def __init__(self, url: str, prefix: str = "ratelimit", clock: Callable[[], float] = time.time):
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix
        self.clock = clock

    async def hit(self, kind: str, key: str, limit: int) -> float | None:
        if limit <= 0:
            return None
        now = self.clock()
        name = f"{self.prefix}:{kind}:{key}:{int(now // WINDOW_SECONDS)}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, 2 * WINDOW_SECONDS).execute()
        except Exception as exc:  # noqa: BLE001 - any Redis failure: let the request through
            log.warning("rate limit: Redis unavailable (%s); not limiting", type(exc).__name__)
            return None
        return None if count <= limit else _retry_after(now)

    async def close(self) -> None:
        await self._redis.aclose()


def _retry_after(now: float) -> float:
    return max(1.0, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))


def make_limiter(redis_url: str):
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()


async def limiter_ctx(app: web.Application):
    from .keys import SETTINGS

    app[LIMITER] = make_limiter(app[SETTINGS].redis_url)
    yield
    await app[LIMITER].close()


def too_many(retry_after: float, what: str) -> web.Response:
    return web.json_response({"error": f"too many requests from this {what}; try again in {int(retry_after)} s",
                              "retry_after": int(retry_after)}, status=429,
                             headers={"Retry-After": str(int(retry_after))})

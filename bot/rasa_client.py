"""The only place that talks to Rasa (its REST channel contract)."""
from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger(__name__)


class RasaUnavailable(RuntimeError):
    pass


class RasaClient:
    def __init__(self, base_url: str, timeout: float = 10.0, retries: int = 2):
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout,
                                                  connector=aiohttp.TCPConnector(limit=200))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, sender: str, text: str, metadata: dict) -> list[dict]:
        """Send one customer message; return Rasa's bot messages.

        Only failures to connect are retried (with backoff): once Rasa has the message, sending it
        again would process it twice.
        """
        assert self._session is not None, "RasaClient.start() was not awaited"
        body = {"sender": sender, "message": text, "metadata": metadata}
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                async with self._session.post(f"{self.base_url}/webhooks/rest/webhook", json=body) as resp:
                    if resp.status != 200:
                        detail = (await resp.text())[:200]
                        raise RasaUnavailable(f"Rasa answered HTTP {resp.status}: {detail}")
                    data = await resp.json(content_type=None)
                    if not isinstance(data, list):
                        raise RasaUnavailable("Rasa answered with something other than a list of messages")
                    return data
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                if attempt >= self.retries:
                    raise RasaUnavailable(f"cannot reach Rasa at {self.base_url}: {exc}") from exc
                await asyncio.sleep(delay)
                delay *= 2
            except asyncio.TimeoutError as exc:
                raise RasaUnavailable(f"Rasa did not answer within {self.timeout.total} s") from exc
        raise RasaUnavailable("unreachable")  # pragma: no cover

    async def ready(self) -> tuple[bool, str]:
        assert self._session is not None
        try:
            async with self._session.get(f"{self.base_url}/webhooks/rest/",
                                         timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return True, "ok"
                return False, f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return False, f"unreachable ({type(exc).__name__})"

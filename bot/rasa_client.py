"""The only place that talks to Rasa (its REST channel contract).

With several Rasa servers (RASA_URL lists them; ``make run`` starts RASA_SERVERS of them), each
customer always goes to the same server, chosen by a hash of its sender id: a server handles one
customer's messages one at a time with its in-memory lock store, so no shared lock store is needed,
and it finds the customer's conversation in its tracker-store memory. When that server cannot be
reached, the next one in the list takes the message (its tracker store reads the same database).
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Sequence

import aiohttp

log = logging.getLogger(__name__)


class RasaUnavailable(RuntimeError):
    pass


class RasaClient:
    def __init__(self, base_url: "str | Sequence[str]", timeout: float = 10.0, retries: int = 2):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.base_urls = [u.rstrip("/") for u in urls]
        if not self.base_urls:
            raise ValueError("RasaClient needs at least one Rasa URL")
        self.base_url = self.base_urls[0]
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

        Only failures to connect, or a server that went away before answering, are retried (with
        backoff, on the next server): once Rasa has answered, sending it again would process it twice.
        """
        assert self._session is not None, "RasaClient.start() was not awaited"
        body = {"sender": sender, "message": text, "metadata": metadata}
        order = self.servers_for(sender)
        delay = 0.2
        for attempt in range(self.retries + 1):
            base_url = order[attempt % len(order)]
            try:
                async with self._session.post(f"{base_url}/webhooks/rest/webhook", json=body) as resp:
                    if resp.status != 200:
                        detail = (await resp.text())[:200]
                        raise RasaUnavailable(f"Rasa answered HTTP {resp.status}: {detail}")
                    data = await resp.json(content_type=None)
                    if not isinstance(data, list):
                        raise RasaUnavailable("Rasa answered with something other than a list of messages")
                    return data
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # could not connect, or the server went away (killed, restarted: "connection reset")
                # before it answered, so it saved nothing of this message: the next server may take it
                if attempt >= self.retries:
                    raise RasaUnavailable(f"cannot reach Rasa at {base_url}: {exc}") from exc
                await asyncio.sleep(delay)
                delay *= 2
            except asyncio.TimeoutError as exc:
                raise RasaUnavailable(f"Rasa did not answer within {self.timeout.total} s") from exc
            except (aiohttp.ClientError, ValueError) as exc:  # a broken answer (e.g. not JSON)
                raise RasaUnavailable(f"Rasa at {base_url} answered badly: {type(exc).__name__}: {exc}") from exc
        raise RasaUnavailable("unreachable")  # pragma: no cover

    def servers_for(self, sender: str) -> list[str]:
        """The server that has this customer, then the others in turn."""
        first = zlib.crc32(sender.encode("utf-8")) % len(self.base_urls)
        return self.base_urls[first:] + self.base_urls[:first]

    async def ready(self) -> tuple[bool, str]:
        """Ready when every server answers; the detail names the ones that do not."""
        assert self._session is not None
        results = await asyncio.gather(*(self._ready(u) for u in self.base_urls))
        bad = [f"{u}: {detail}" if len(self.base_urls) > 1 else detail
               for u, (ok, detail) in zip(self.base_urls, results) if not ok]
        return (not bad), ("ok" if not bad else "; ".join(bad))

    async def _ready(self, base_url: str) -> tuple[bool, str]:
        try:
            async with self._session.get(f"{base_url}/webhooks/rest/",
                                         timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return True, "ok"
                return False, f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return False, f"unreachable ({type(exc).__name__})"

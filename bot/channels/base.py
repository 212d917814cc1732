"""The contract every channel adapter fulfils.

A channel module holds its inbound side (parse and verify the platform's payload, build one
``InboundMessage``, hand it to the router) and its outbound side (render the router's replies for the
platform and send them). It exposes a ``Channel`` subclass; ``create_app`` asks each for its routes
and keeps the enabled ones in the channel registry (``keys.CHANNELS``), so that anyone who must
reach a customer (the router for asynchronous answers, the agent inbox later) calls
``deliver`` on the conversation's channel without knowing the platform.
"""
from __future__ import annotations

from aiohttp import web

from ..messages import DeliveryResult, Recipient, Reply


class Channel:
    name: str = ""

    @classmethod
    def enabled(cls, settings) -> bool:
        """Whether the settings turn this channel on."""
        return True

    def __init__(self, app: web.Application):
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        """Open resources (client sessions, background workers). Called from the app's cleanup_ctx."""

    async def stop(self) -> None:
        """Close them; finish or persist work in flight."""

    async def deliver(self, recipient: Recipient, replies: list[Reply], *, message_ids: list[str] | None = None,
                      sender_type: str = "agent") -> DeliveryResult:
        """Send replies to the customer outside a request/response cycle.

        Each reply is stored as an outbound message of the recipient's conversation (with
        ``sender_type``) unless ``message_ids`` names messages the caller stored already (the agent
        inbox does: it stores an agent's reply, then asks the channel to send it)."""
        raise NotImplementedError(f"channel {self.name!r} cannot deliver asynchronously")

    async def typing(self, recipient: Recipient, on: bool) -> bool:
        """Show (or stop showing) that a person is typing, where the platform can. True if shown.
        The agent inbox calls it while an agent types; channels that cannot show it keep this default."""
        return False

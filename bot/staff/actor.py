"""The agent doing something: who signed in (bot.staff.auth) and acts in the inbox, the hand-off desk
and the editors' workspace."""
from __future__ import annotations

from dataclasses import dataclass

from ..store.models import Agent


@dataclass(frozen=True)
class Actor:
    """The agent doing something (a snapshot, detached from any session)."""
    id: int
    public_id: str
    name: str
    email: str
    role: str

    @classmethod
    def of(cls, agent: Agent) -> "Actor":
        return cls(agent.id, agent.public_id, agent.name, agent.email, agent.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict:
        return {"id": self.public_id, "name": self.name, "email": self.email}

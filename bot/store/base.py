"""What every model of the store shares: the declarative base and the columns' defaults (a new public
id; the time, from bot.clock). bot.store.models holds the conversation store, bot.store.editor_models
the editors' workspace."""
from __future__ import annotations

import uuid

from sqlalchemy.orm import DeclarativeBase

from ..clock import utcnow  # noqa: F401 - the columns' default time


def new_public_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass

"""Conversation persistence (SQLAlchemy 2, async) and its Alembic migrations."""

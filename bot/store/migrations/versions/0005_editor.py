"""editors' workspace: articles, versions, reviews, audit log (filled by the editor work)

Revision ID: 0005_editor
Revises: 0004_inbox
Create Date: 2026-11-23 23:45:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0005_editor'
down_revision = '0004_inbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

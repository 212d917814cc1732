"""insights: identities linking, surveys, sentiment, event stream, customer counts (filled by the insights work)

Revision ID: 0006_insights
Revises: 0005_editor
Create Date: 2026-11-23 23:45:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0006_insights'
down_revision = '0005_editor'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

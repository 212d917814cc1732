"""scale-out and security: rate limits and anything the cluster needs (filled by the scale-out work)

Revision ID: 0007_scale
Revises: 0006_insights
Create Date: 2026-11-23 23:45:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0007_scale'
down_revision = '0006_insights'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

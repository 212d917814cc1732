"""an index on messages.delivery_status: the gateway looks up inbound messages by their processing
state (accepted but not answered after a restart; deferred while the assistant is unavailable) and
must not walk every message of a channel to find them

Revision ID: 0007_inbound_status
Revises: 0006_insights
Create Date: 2026-12-03 08:30:00
"""
from alembic import op


revision = '0007_inbound_status'
down_revision = '0006_insights'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_delivery_status', 'messages', ['delivery_status', 'id'])


def downgrade() -> None:
    op.drop_index('ix_messages_delivery_status', table_name='messages')

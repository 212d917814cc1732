"""inbound_batches: a verified webhook body with many updates (WhatsApp batches up to 1000 in one
POST) is stored in one write before the 200 and split into messages and statuses in the background

Revision ID: 0008_inbound_batches
Revises: 0007_inbound_status
Create Date: 2026-12-05 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_inbound_batches'
down_revision = '0007_inbound_status'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_inbound_batches_channel', 'inbound_batches', ['channel'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_inbound_batches_channel', table_name='inbound_batches')
    op.drop_table('inbound_batches')

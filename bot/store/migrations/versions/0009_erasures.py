"""erasures: keyed hashes of deleted customers' platform ids and when they were deleted, so that an
update sent before the deletion and delivered after it is not stored

Revision ID: 0009_erasures
Revises: 0008_inbound_batches
Create Date: 2026-12-05 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_erasures'
down_revision = '0008_inbound_batches'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_erasures_digest', 'erasures', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_erasures_digest', table_name='erasures')
    op.drop_table('erasures')

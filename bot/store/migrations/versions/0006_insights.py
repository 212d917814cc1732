"""surveys, event stream, customer counts, contact merges

Revision ID: 0006_insights
Revises: 0005_editor
Create Date: 2026-12-01 02:54:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_insights'
down_revision = '0005_editor'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.String(length=10), nullable=False),
    sa.Column('period_end', sa.String(length=10), nullable=False),
    sa.Column('customers_start', sa.Integer(), nullable=False),
    sa.Column('customers_end', sa.Integer(), nullable=False),
    sa.Column('new_customers', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('period_start', 'period_end', name='uq_customer_counts_period')
    )
    op.create_table('event_stream',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=True),
    sa.Column('contact_id', sa.String(length=32), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('event_stream', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_stream_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_stream_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_event_stream_unpublished', ['published_at', 'id'], unique=False)

    op.create_table('contact_merges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('kept_contact_id', sa.Integer(), nullable=True),
    sa.Column('kept_public_id', sa.String(length=32), nullable=False),
    sa.Column('merged_public_id', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('identity', sa.String(length=400), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['kept_contact_id'], ['contacts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('contact_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_merges_kept_contact_id'), ['kept_contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_merges_merged_public_id'), ['merged_public_id'], unique=False)

    op.create_table('survey_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('with_nps', sa.Boolean(), nullable=False),
    sa.Column('csat', sa.Integer(), nullable=True),
    sa.Column('nps', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id')
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_responses_contact_id'), ['contact_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_responses_contact_id'))

    op.drop_table('survey_responses')
    with op.batch_alter_table('contact_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_merges_merged_public_id'))
        batch_op.drop_index(batch_op.f('ix_contact_merges_kept_contact_id'))

    op.drop_table('contact_merges')
    with op.batch_alter_table('event_stream', schema=None) as batch_op:
        batch_op.drop_index('ix_event_stream_unpublished')
        batch_op.drop_index(batch_op.f('ix_event_stream_conversation_id'))
        batch_op.drop_index(batch_op.f('ix_event_stream_contact_id'))

    op.drop_table('event_stream')
    op.drop_table('customer_counts')

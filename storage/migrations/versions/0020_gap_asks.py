"""gap asks: who asked each question folded into a knowledge gap, so that forget-me and log
retention remove a person's words from the gaps list

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'knowledge_gap_asks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('gap_id', sa.Integer(), nullable=False),
        sa.Column('asker', sa.String(length=128), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['gap_id'], ['knowledge_gaps.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_knowledge_gap_asks_gap_id', 'knowledge_gap_asks', ['gap_id'])
    op.create_index('ix_knowledge_gap_asks_asker', 'knowledge_gap_asks', ['asker'])


def downgrade() -> None:
    op.drop_index('ix_knowledge_gap_asks_asker', table_name='knowledge_gap_asks')
    op.drop_index('ix_knowledge_gap_asks_gap_id', table_name='knowledge_gap_asks')
    op.drop_table('knowledge_gap_asks')

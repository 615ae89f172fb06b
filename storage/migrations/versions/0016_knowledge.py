"""grounded answers: knowledge entries (with embeddings), gaps, per-model threshold and handoff

Revision ID: 0016
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'knowledge_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=255), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('ref', sa.String(length=300), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('embedding', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_knowledge_entries_model_version', 'knowledge_entries',
                    ['model_id', 'version'])
    op.create_table(
        'knowledge_gaps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('workspace', sa.String(length=128), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('first_asked', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_asked', sa.DateTime(timezone=True), nullable=False),
        sa.Column('embedding', sa.LargeBinary(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=True),
        sa.Column('answered_by', sa.String(length=128), nullable=False),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_knowledge_gaps_model_id', 'knowledge_gaps', ['model_id'])
    op.create_index('ix_knowledge_gaps_workspace', 'knowledge_gaps', ['workspace'])
    op.create_index('ix_knowledge_gaps_state', 'knowledge_gaps', ['state'])
    op.create_table(
        'knowledge_settings',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('threshold_by', sa.String(length=16), nullable=False),
        sa.Column('handoff', sa.Text(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('model_id'))


def downgrade() -> None:
    op.drop_table('knowledge_settings')
    op.drop_index('ix_knowledge_gaps_state', table_name='knowledge_gaps')
    op.drop_index('ix_knowledge_gaps_workspace', table_name='knowledge_gaps')
    op.drop_index('ix_knowledge_gaps_model_id', table_name='knowledge_gaps')
    op.drop_table('knowledge_gaps')
    op.drop_index('ix_knowledge_entries_model_version', table_name='knowledge_entries')
    op.drop_table('knowledge_entries')

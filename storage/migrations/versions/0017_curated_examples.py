"""the learning loop: curated pairs with their origin and review state, what trained each
version, and the owner's per-model curation choices

Revision ID: 0017
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'curated_examples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('ref', sa.String(length=128), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('bot_answer', sa.Text(), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.Column('workspace', sa.String(length=128), nullable=False),
        sa.Column('asker', sa.String(length=128), nullable=False),
        sa.Column('suggested_by', sa.String(length=128), nullable=False),
        sa.Column('supporters', sa.JSON(), nullable=True),
        sa.Column('approved_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    for column in ('model_id', 'status', 'message_id', 'workspace', 'asker', 'suggested_by'):
        op.create_index(f'ix_curated_examples_{column}', 'curated_examples', [column])
    op.create_table(
        'version_data',
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('file_examples', sa.Integer(), nullable=False),
        sa.Column('curated_ids', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('version_id'))
    op.create_table(
        'curation_settings',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('thumbs_up_approves', sa.Boolean(), nullable=False),
        sa.Column('outside_suggestions', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('model_id'))


def downgrade() -> None:
    op.drop_table('curation_settings')
    op.drop_table('version_data')
    for column in ('model_id', 'status', 'message_id', 'workspace', 'asker', 'suggested_by'):
        op.drop_index(f'ix_curated_examples_{column}', table_name='curated_examples')
    op.drop_table('curated_examples')

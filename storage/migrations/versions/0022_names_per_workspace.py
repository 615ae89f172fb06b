"""model names are unique per owner workspace; tuned models and jobs point at entries by id

Revision ID: 0022
Revises: 0003

Before this revision a name was unique in the whole store, so the name was the key that
tuned models (`models.base_name`) and jobs (`jobs.model_name`) used. Now two workspaces may
each have a `support-bot`; `models.base_id` and `jobs.model_id` carry the id, filled here
from the (then unique) names. The names stay for display and search.

Only plain CREATE/DROP INDEX and ADD COLUMN: a SQLite batch rebuild of `models` would drop
the search triggers of 0002.
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_models_name', table_name='models')
    op.create_index('ix_models_name', 'models', ['name'], unique=False)
    op.create_index('uq_models_workspace_name', 'models', ['workspace', 'name'], unique=True)
    op.add_column('models', sa.Column('base_id', sa.Integer(), nullable=True))
    op.create_index('ix_models_base_id', 'models', ['base_id'], unique=False)
    op.add_column('jobs', sa.Column('model_id', sa.Integer(), nullable=True))
    op.create_index('ix_jobs_model_id', 'jobs', ['model_id'], unique=False)
    # Names were unique until now, so each name points at one entry.
    op.execute(
        "UPDATE models SET base_id = (SELECT b.id FROM models AS b "
        "WHERE b.name = models.base_name AND b.is_base) WHERE base_name IS NOT NULL")
    op.execute(
        "UPDATE jobs SET model_id = (SELECT m.id FROM models AS m WHERE m.name = jobs.model_name)")
    op.create_table(
        'rate_limits',
        sa.Column('key', sa.String(length=191), nullable=False),
        sa.Column('tat', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_rate_limits_tat', 'rate_limits', ['tat'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rate_limits_tat', table_name='rate_limits')
    op.drop_table('rate_limits')
    op.drop_index('ix_jobs_model_id', table_name='jobs')
    op.drop_column('jobs', 'model_id')  # SQLite 3.35+ drops a column in place
    op.drop_index('ix_models_base_id', table_name='models')
    op.drop_index('uq_models_workspace_name', table_name='models')
    op.drop_index('ix_models_name', table_name='models')
    op.create_index('ix_models_name', 'models', ['name'], unique=True)
    op.drop_column('models', 'base_id')

"""installations: chat apps installed into workspaces through OAuth (Slack), one row per team

Revision ID: 0018
Revises: 0021
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'installations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('enterprise_id', sa.String(length=64), nullable=False),
        sa.Column('team_id', sa.String(length=64), nullable=False),
        sa.Column('team_name', sa.String(length=200), nullable=False),
        sa.Column('app_id', sa.String(length=64), nullable=False),
        sa.Column('bot_token', sa.Text(), nullable=False),
        sa.Column('bot_id', sa.String(length=64), nullable=False),
        sa.Column('bot_user_id', sa.String(length=64), nullable=False),
        sa.Column('bot_scopes', sa.Text(), nullable=False),
        sa.Column('installer', sa.String(length=64), nullable=False),
        sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
        sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('platform', 'enterprise_id', 'team_id'))
    op.create_index('ix_installations_team_id', 'installations', ['team_id'])


def downgrade() -> None:
    op.drop_index('ix_installations_team_id', table_name='installations')
    op.drop_table('installations')

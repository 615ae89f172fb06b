"""schedules remember where they were set, so scheduled retrains report there

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild) so SQLite keeps the other tables' triggers.
    op.add_column('schedules', sa.Column('origin', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('schedules') as batch_op:
        batch_op.drop_column('origin')

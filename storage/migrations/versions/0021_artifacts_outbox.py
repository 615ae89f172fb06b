"""past one machine: the artifact store (blobs in chunks, trees), the job outbox, job watches

Revision ID: 0021
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'artifact_blobs',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'))
    op.create_index('ix_artifact_blobs_created_at', 'artifact_blobs', ['created_at'])
    op.create_table(
        'artifact_chunks',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('sha256', 'seq'))
    op.create_table(
        'artifact_trees',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('manifest', sa.JSON(), nullable=True),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'))
    op.create_index('ix_artifact_trees_created_at', 'artifact_trees', ['created_at'])
    op.create_table(
        'job_outbox',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('job_id'))
    op.create_index('ix_job_outbox_due_at', 'job_outbox', ['due_at'])
    op.create_table(
        'job_watches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=191), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('place', sa.JSON(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_text', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'))
    op.create_index('ix_job_watches_job_id', 'job_watches', ['job_id'])
    op.create_index('ix_job_watches_platform', 'job_watches', ['platform'])
    op.create_index('ix_job_watches_state', 'job_watches', ['state'])
    # Jobs queued before this upgrade get their outbox entry, so a message lost before the
    # upgrade is sent again like any other.
    op.execute("INSERT INTO job_outbox (job_id, kind, due_at, attempts, last_error, created_at) "
               "SELECT id, kind, created_at, 0, '', created_at FROM jobs WHERE state = 'queued'")


def downgrade() -> None:
    for table in ('job_watches', 'job_outbox', 'artifact_trees', 'artifact_chunks',
                  'artifact_blobs'):
        op.drop_table(table)

"""knowledge entries rank by a vector that weighs in the answer alone (engine/knowledge/ranking
entry_vector): the vectors stored before are cleared, and each is computed again the first
time its model is searched

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE knowledge_entries SET embedding = NULL"))


def downgrade() -> None:
    # The older code ranks by the question + answer vector alone: cleared again, recomputed.
    op.execute(sa.text("UPDATE knowledge_entries SET embedding = NULL"))

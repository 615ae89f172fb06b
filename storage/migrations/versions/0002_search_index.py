"""search index for the catalog: SQLite FTS5 table + triggers, PostgreSQL tsvector + GIN

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:10:00

On SQLite `models_fts` is an external-content FTS5 table over models(name, description,
tags) kept in step by triggers; the triggers fire only when those columns change, so usage
and rating updates never touch the index. On PostgreSQL `models.search_vector` is a stored
generated tsvector (name weighted A, tags B, description C) with a GIN index.
Both add an index on usage_count for the "list everything, most used first" page.

Note for later migrations: a SQLite batch_alter_table on `models` rebuilds the table and
drops its triggers; such a migration must re-create them (SQLITE_TRIGGERS here).
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    """CREATE TRIGGER models_fts_ai AFTER INSERT ON models BEGIN
         INSERT INTO models_fts(rowid, name, description, tags)
         VALUES (new.id, new.name, new.description, new.tags);
       END""",
    """CREATE TRIGGER models_fts_ad AFTER DELETE ON models BEGIN
         INSERT INTO models_fts(models_fts, rowid, name, description, tags)
         VALUES ('delete', old.id, old.name, old.description, old.tags);
       END""",
    """CREATE TRIGGER models_fts_au AFTER UPDATE OF name, description, tags ON models BEGIN
         INSERT INTO models_fts(models_fts, rowid, name, description, tags)
         VALUES ('delete', old.id, old.name, old.description, old.tags);
         INSERT INTO models_fts(rowid, name, description, tags)
         VALUES (new.id, new.name, new.description, new.tags);
       END""",
]

PG_VECTOR = (
    "setweight(to_tsvector('english', replace(name, '-', ' ')), 'A') || "
    "setweight(to_tsvector('english', tags), 'B') || "
    "setweight(to_tsvector('english', description), 'C')"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index('ix_models_usage_count', 'models', ['usage_count'])
    if dialect == 'sqlite':
        # The FTS table stores only the index (content='models'); rows live in models.
        # unicode61 splits names on dashes, so "support-bot" matches "support".
        op.execute(
            "CREATE VIRTUAL TABLE models_fts USING fts5(name, description, tags, "
            "content='models', content_rowid='id', tokenize='porter unicode61')"
        )
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        # Index the rows that exist already (an upgraded store).
        op.execute(
            "INSERT INTO models_fts(rowid, name, description, tags) "
            "SELECT id, name, description, tags FROM models"
        )
    elif dialect == 'postgresql':
        op.execute(
            f"ALTER TABLE models ADD COLUMN search_vector tsvector "
            f"GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
        )
        op.execute("CREATE INDEX ix_models_search_vector ON models USING GIN (search_vector)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for trigger in ('models_fts_ai', 'models_fts_ad', 'models_fts_au'):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS models_fts")
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_models_search_vector")
        op.execute("ALTER TABLE models DROP COLUMN IF EXISTS search_vector")
    op.drop_index('ix_models_usage_count', table_name='models')

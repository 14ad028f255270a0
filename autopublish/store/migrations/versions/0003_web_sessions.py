"""The editors' page sessions (revocable, one row per signed-in browser).

A SQLite database written by the pre-Alembic store may have the table already (that store
created it under schema version 1): then it is kept as it is.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "web_sessions" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.Text, primary_key=True),
        sa.Column("user", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
    )
    op.create_index("web_sessions_user", "web_sessions", ["user"])


def downgrade() -> None:
    op.drop_table("web_sessions")

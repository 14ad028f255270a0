"""Two-step platforms keep what they prepared (progress); edits and deletes of live posts are
deliveries too (kind, target_id).

The pre-Alembic store added these columns when it opened a database, so a SQLite
database it wrote may have some already: only the missing ones are added.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("deliveries")}
    if "progress" not in present:
        op.add_column("deliveries", sa.Column("progress", sa.Text))
    if "kind" not in present:
        op.add_column("deliveries", sa.Column("kind", sa.Text, nullable=False, server_default="post"))
    if "target_id" not in present:
        op.add_column("deliveries", sa.Column("target_id", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        for column in ("target_id", "kind", "progress"):
            batch.drop_column(column)

"""Message codes beside the stored English (the editors' page shows them in the reader's language),
and the text of each post exactly as sent.

The pre-Alembic store added these columns when it opened a database, so a SQLite
database it wrote may have some already: only the missing ones are added.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ADDED = (
    ("events", "code"), ("events", "params"),
    ("deliveries", "reason_code"), ("deliveries", "reason_params"), ("deliveries", "sent_text"),
    ("channels", "paused_code"), ("channels", "paused_params"),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, column in ADDED:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, sa.Column(column, sa.Text))


def downgrade() -> None:
    for table, column in reversed(ADDED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)

"""Sign-in attempt counts in the database, so every web process on it shares the throttle.

Kept as it is when the table is there already (a database set back to an earlier revision by hand).

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "sign_in_attempts" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "sign_in_attempts",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
        sa.Column("last_at", sa.Float, nullable=False),
    )
    op.create_index("sign_in_attempts_last", "sign_in_attempts", ["last_at"])


def downgrade() -> None:
    op.drop_table("sign_in_attempts")

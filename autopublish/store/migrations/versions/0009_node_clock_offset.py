"""Each node's clock offset to the database's, so `autopublish nodes` and the web page can show a machine whose clock is off.

Revision ID: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "clock_offset" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("nodes")}:
        op.add_column("nodes", sa.Column("clock_offset", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("clock_offset")

"""An index for pacing and the month at a glance (a channel's recent posts).

The pre-Alembic store created it when it opened a database, so a SQLite database it
wrote may have it already.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "deliveries_sent" not in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("deliveries")}:
        op.create_index("deliveries_sent", "deliveries", ["channel", "sent_at"])


def downgrade() -> None:
    op.drop_index("deliveries_sent", "deliveries")

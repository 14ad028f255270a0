"""Push: the links each feed declares, when pings last asked, WebSub subscriptions.

The pre-Alembic store created these tables on first use, so a SQLite database it wrote
may have them already: then they are kept as they are.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "push_feeds" not in existing:
        op.create_table(
            "push_feeds",
            sa.Column("feed", sa.Text, primary_key=True),
            sa.Column("home", sa.Text, nullable=False, server_default=""),
            sa.Column("hub", sa.Text, nullable=False, server_default=""),
            sa.Column("self_url", sa.Text, nullable=False, server_default=""),
            sa.Column("links_at", sa.Float), sa.Column("last_ping_at", sa.Float), sa.Column("last_hook_at", sa.Float),
            sa.Column("last_websub_at", sa.Float),
        )
    if "websub_subscriptions" not in existing:
        op.create_table(
            "websub_subscriptions",
            sa.Column("feed", sa.Text, primary_key=True),
            sa.Column("hub", sa.Text, nullable=False),
            sa.Column("topic", sa.Text, nullable=False),
            sa.Column("callback", sa.Text, nullable=False),
            sa.Column("nonce", sa.Text, nullable=False),
            sa.Column("state", sa.Text, nullable=False),
            sa.Column("pending", sa.Text, nullable=False, server_default=""),
            sa.Column("lease_seconds", sa.Float),
            sa.Column("lease_expires_at", sa.Float),
            sa.Column("requested_at", sa.Float),
            sa.Column("verified_at", sa.Float),
            sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
            sa.Column("next_attempt_at", sa.Float),
            sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        )


def downgrade() -> None:
    op.drop_table("websub_subscriptions")
    op.drop_table("push_feeds")

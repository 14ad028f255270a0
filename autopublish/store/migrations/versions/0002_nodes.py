"""Several nodes on one database: node heartbeats, feed and channel leases, who claimed a delivery.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feeds", sa.Column("lease_node", sa.Text))
    op.add_column("feeds", sa.Column("lease_until", sa.Float))
    op.add_column("feeds", sa.Column("lease_at", sa.Float))
    op.add_column("deliveries", sa.Column("claimed_by", sa.Text))
    op.create_table(
        "nodes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
    )
    op.create_table(
        "channel_leases",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    # An autopublish from before Alembic reads this and refuses the database instead of misusing it.
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.drop_table("channel_leases")
    op.drop_table("nodes")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("lease_at")
        batch.drop_column("lease_until")
        batch.drop_column("lease_node")
    op.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")

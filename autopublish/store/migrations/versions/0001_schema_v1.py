"""Schema version 1: the tables of autopublish's original SQLite store.

A SQLite database written by that store (meta.schema_version = 1) is stamped at this
revision without running it, then upgraded like any other.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table("meta", sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False))
    op.create_table(
        "feeds",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("etag", sa.Text), sa.Column("last_modified", sa.Text), sa.Column("fetched_at", sa.Float), sa.Column("body_hash", sa.Text),
        sa.Column("baseline_at", sa.Float),
        sa.Column("last_poll_at", sa.Float), sa.Column("last_ok_at", sa.Float), sa.Column("last_error", sa.Text),
        sa.Column("failing_since", sa.Float),
        sa.Column("polls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feed", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("canonical", sa.Text, nullable=False),
        sa.Column("link", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("published", sa.Float),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.UniqueConstraint("feed", "key"),
    )
    op.create_index("articles_canonical", "articles", ["canonical"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("article_id", sa.Integer, sa.ForeignKey("articles.id"), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("repost_of", sa.Integer, sa.ForeignKey("deliveries.id")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("first_try_at", sa.Float),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("post_url", sa.Text), sa.Column("remote_id", sa.Text),
        sa.Column("needs_editor", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.UniqueConstraint("channel", "article_id", "generation"),
    )
    op.create_index("deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("deliveries_channel", "deliveries", ["channel", "status"])
    op.create_index("deliveries_article", "deliveries", ["article_id"])
    op.create_table(
        "channels",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paused_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("paused_at", sa.Float),
        sa.Column("paused_by", sa.Text, nullable=False, server_default=""),
        sa.Column("token_expires_at", sa.Float),
        sa.Column("last_success_at", sa.Float),
        sa.Column("last_failure_at", sa.Float),
    )
    op.create_table(
        "events",
        sa.Column("id", EVENT_ID, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=""),
        sa.Column("delivery_id", sa.Integer),
        sa.Column("article_id", sa.Integer),
        sa.Column("channel", sa.Text, nullable=False, server_default=""),
        sa.Column("feed", sa.Text, nullable=False, server_default=""),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.Text, nullable=False, server_default="autopublish"),
    )
    op.create_index("events_at", "events", ["at"])
    op.create_index("events_delivery", "events", ["delivery_id"])
    op.create_table(
        "alerts",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("last_sent_at", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("resolved_at", sa.Float),
    )
    op.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")


def downgrade() -> None:
    for table in ("alerts", "events", "channels", "deliveries", "articles", "feeds", "meta"):
        op.drop_table(table)

"""The tables as the current migration head leaves them (SQLAlchemy Core; queries are built on these).

Times are Unix seconds (REAL / double precision); flags are 0/1 integers, as schema
version 1 stored them, so an upgraded SQLite database keeps its rows unchanged.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite needs the type spelled INTEGER for a rowid (auto-increment) key; PostgreSQL gets BIGSERIAL.
EventId = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

feeds = Table(
    "feeds", metadata,
    Column("name", Text, primary_key=True),
    Column("url", Text, nullable=False, server_default=""),
    Column("etag", Text), Column("last_modified", Text), Column("fetched_at", Float), Column("body_hash", Text),
    Column("baseline_at", Float),
    Column("last_poll_at", Float), Column("last_ok_at", Float), Column("last_error", Text), Column("failing_since", Float),
    Column("polls", Integer, nullable=False, server_default="0"),
    Column("title", Text, nullable=False, server_default=""),
    # the poll lease: one node polls a feed at a time, and a due feed once per interval
    Column("lease_node", Text), Column("lease_until", Float), Column("lease_at", Float),
)

articles = Table(
    "articles", metadata,
    Column("id", Integer, primary_key=True),
    Column("feed", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("canonical", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("published", Float),
    Column("first_seen_at", Float, nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("feed", "key"),
    Index("articles_canonical", "canonical"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("repost_of", Integer, ForeignKey("deliveries.id")),
    Column("status", Text, nullable=False),
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float),
    Column("first_try_at", Float),
    Column("reason", Text, nullable=False, server_default=""),
    Column("post_url", Text), Column("remote_id", Text),
    Column("needs_editor", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("claimed_by", Text),  # the node that set it to sending
    Column("reason_code", Text), Column("reason_params", Text),  # the reason's message code (autopublish.messages), JSON
    Column("sent_text", Text),  # the post's text exactly as sent
    Column("progress", Text),  # what the platform is preparing for this delivery (a media container)
    Column("kind", Text, nullable=False, server_default="post"),  # "post", or "edit"/"delete" of the post named by target_id
    Column("target_id", Integer),
    UniqueConstraint("channel", "article_id", "generation"),
    Index("deliveries_due", "status", "next_attempt_at"),
    Index("deliveries_channel", "channel", "status"),
    Index("deliveries_article", "article_id"),
    Index("deliveries_sent", "channel", "sent_at"),  # pacing and the month at a glance
)

channels = Table(
    "channels", metadata,
    Column("name", Text, primary_key=True),
    Column("paused", Integer, nullable=False, server_default="0"),
    Column("paused_reason", Text, nullable=False, server_default=""),
    Column("paused_at", Float),
    Column("paused_by", Text, nullable=False, server_default=""),
    Column("token_expires_at", Float),
    Column("last_success_at", Float),
    Column("last_failure_at", Float),
    Column("paused_code", Text), Column("paused_params", Text),
)

events = Table(
    "events", metadata,
    Column("id", EventId, primary_key=True),
    Column("at", Float, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=""),
    Column("delivery_id", Integer),
    Column("article_id", Integer),
    Column("channel", Text, nullable=False, server_default=""),
    Column("feed", Text, nullable=False, server_default=""),
    Column("message", Text, nullable=False, server_default=""),
    Column("actor", Text, nullable=False, server_default="autopublish"),
    Column("code", Text), Column("params", Text),  # the message's code (autopublish.messages) and parameters, JSON
    Index("events_at", "at"),
    Index("events_delivery", "delivery_id"),
)

alerts = Table(
    "alerts", metadata,
    Column("key", Text, primary_key=True),
    Column("opened_at", Float, nullable=False),
    Column("last_sent_at", Float),
    Column("message", Text, nullable=False),
    Column("resolved_at", Float),
)

nodes = Table(
    "nodes", metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float),
    Column("clock_offset", Float, nullable=False, server_default="0"),  # seconds its clock is behind the database's (clock.py)
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", Text, primary_key=True),
    Column("user", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Index("web_sessions_user", "user"),
)

push_feeds = Table(
    "push_feeds", metadata,
    Column("feed", Text, primary_key=True),
    Column("home", Text, nullable=False, server_default=""),
    Column("hub", Text, nullable=False, server_default=""),
    Column("self_url", Text, nullable=False, server_default=""),
    Column("links_at", Float), Column("last_ping_at", Float), Column("last_hook_at", Float), Column("last_websub_at", Float),
)

websub_subscriptions = Table(
    "websub_subscriptions", metadata,
    Column("feed", Text, primary_key=True),
    Column("hub", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("callback", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("pending", Text, nullable=False, server_default=""),
    Column("lease_seconds", Float),
    Column("lease_expires_at", Float),
    Column("requested_at", Float),
    Column("verified_at", Float),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float),
    Column("last_error", Text, nullable=False, server_default=""),
)

channel_leases = Table(
    "channel_leases", metadata,
    Column("channel", Text, primary_key=True),
    Column("node", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)

sign_in_attempts = Table(
    "sign_in_attempts", metadata,  # the editors' page sign-in throttle, shared by every web process (store/signins.py)
    Column("kind", Text, primary_key=True),  # "address" or "account"
    Column("key", Text, primary_key=True),  # an address (IPv6: its /64) or a casefolded account name
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("not_before", Float, nullable=False, server_default="0"),
    Column("last_at", Float, nullable=False),
    Index("sign_in_attempts_last", "last_at"),  # forgetting quiet counts
)

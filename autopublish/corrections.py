"""Corrections and takedowns: an article edited on the site updates its live posts; retract removes them.

Both only queue deliveries of kind "edit" or "delete" (see Store.queue_action); the
pipeline sends them through the same claim-and-record machinery as posts, so each goes
out exactly once, paced, and shows in the publish log.
"""

from __future__ import annotations

import hashlib
import json

from autopublish.config import ChannelConfig, Config
from autopublish.models import Article, DeliveryStatus
from autopublish.platforms import publisher_class
from autopublish.render import article_values, template_fields
from autopublish.store import PENDING, Store

EDITED = "Edited on the site"


def fields_hash(article: Article, template: str, tz: str = "UTC") -> str:
    """A hash of the values the channel's template shows: a change it does not show is not an edit."""
    values = article_values(article, tz)
    shown = {name: values.get(name, "") for name in sorted(set(template_fields(template)))}
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _platform(channel: ChannelConfig) -> tuple[str, bool, bool]:
    """(label, can_edit, can_delete) of the channel's platform."""
    try:
        cls = publisher_class(channel.platform)
    except (ImportError, AttributeError, KeyError):  # an unloadable platform was already reported by the config check
        return channel.platform, False, False
    return cls.label, cls.edits_with(channel.options), cls.deletes_with(channel.options)


def detect_edit(store: Store, config: Config, feed: str, article: Article,
                stored_articles: dict[str, tuple[int, Article]] | None = None) -> list[int]:
    """Compare a known article with the site's current version; queue edits of its live posts.

    Returns the ids of the edit deliveries queued. The stored article is replaced by the
    new one whenever anything changed, so posts still queued go out with the corrected text.
    ``stored_articles``: Store.stored_articles for the feed's keys, read once for a whole poll.
    """
    stored = store.stored_article(feed, article.key) if stored_articles is None else stored_articles.get(article.key)
    if stored is None:
        return []
    article_id, old = stored
    if old == article:
        return []
    tz = config.settings.timezone
    changed_text = (old.title, old.summary, old.content) != (article.title, article.summary, article.content)
    decisions: list[tuple[int, str, str]] = []  # (post delivery id, channel, what happens)
    for row, kind, _target in store.article_actions(article_id):
        channel = config.channels.get(row.channel)
        if kind != "post" or row.status != DeliveryStatus.SENT or not row.remote_id or channel is None:
            continue
        if store.taken_down(row.id) or fields_hash(old, channel.template, tz) == fields_hash(article, channel.template, tz):
            continue
        label, can_edit, _can_delete = _platform(channel)
        if not can_edit:
            decisions.append((row.id, row.channel, f"{EDITED}; this platform cannot edit posts ({label}), so the post keeps the old text"))
        elif channel.on_edit == "ignore":
            decisions.append((row.id, row.channel, f"{EDITED}; this channel ignores edits (on_edit = \"ignore\")"))
        else:
            decisions.append((row.id, row.channel, ""))
    if not changed_text and not decisions:
        store.update_article(article_id, article, "")  # nothing a reader sees changed: no log line
        return []
    store.update_article(article_id, article, f"{EDITED}: \"{article.title}\"")
    queued: list[int] = []
    for post_id, channel_name, message in decisions:
        if message:
            store.note("edit_ignored", message, delivery_id=post_id, article_id=article_id, channel=channel_name, status="edited")
            continue
        new_id = store.queue_action(post_id, "edit", f"{EDITED}; the post will be updated")
        if new_id is not None:
            queued.append(new_id)
    return queued


def retract(store: Store, config: Config, article_id: int, actor: str) -> list[str]:
    """Take an article down everywhere: queue deletes of its live posts, skip what is queued.

    Returns one plain sentence per delivery (also written to the publish log). Safe to repeat.
    """
    lines: list[str] = []
    store.note("retract", f"Take-down requested by {actor}", article_id=article_id, status="retracted", actor=actor)
    for row, kind, _target in store.article_actions(article_id):
        channel = config.channels.get(row.channel)
        if kind == "delete":
            continue
        if row.status in PENDING or row.status == DeliveryStatus.FAILED:
            if store.skip(row.id, actor):
                lines.append(f"{row.channel}: not posted; the queued {'edit' if kind == 'edit' else 'post'} was cancelled")
            continue
        if kind != "post":
            continue
        label, _can_edit, can_delete = _platform(channel) if channel is not None else (row.channel, False, False)
        if row.status == DeliveryStatus.UNCERTAIN:
            store.skip(row.id, actor)
            message = (f"May have been posted to {label}; autopublish could not tell, so check the account "
                       "and remove it by hand if it is there")
            store.note("retract", message, delivery_id=row.id, article_id=article_id, channel=row.channel, status="manual", actor=actor)
            lines.append(f"{row.channel}: {message}")
        elif row.status == DeliveryStatus.SENDING:
            message = "Being posted right now; run the take-down again in a minute"
            store.note("retract", message, delivery_id=row.id, article_id=article_id, channel=row.channel, status="manual", actor=actor)
            lines.append(f"{row.channel}: {message}")
        elif row.status == DeliveryStatus.SENT:
            link = row.post_url or "(no link recorded)"
            if store.taken_down(row.id):
                lines.append(f"{row.channel}: already taken down or on its way")
            elif not can_delete or channel is None or not row.remote_id:
                message = f"{label} cannot delete posts from autopublish; remove it by hand: {link}"
                store.note("retract", message, delivery_id=row.id, article_id=article_id, channel=row.channel, status="manual", actor=actor)
                lines.append(f"{row.channel}: {message}")
            elif store.queue_action(row.id, "delete", f"Take-down requested by {actor}; the post will be deleted", actor=actor):
                lines.append(f"{row.channel}: will be deleted ({link})")
            else:
                lines.append(f"{row.channel}: already taken down or on its way")
    if not lines:
        lines.append("Nothing was posted for this article, and nothing is queued")
    return lines

"""Health: feed health (down for too long, readable again), channel checks (tokens, permissions, expiry)
and articles withdrawn from the site."""

from __future__ import annotations

import logging

from autopublish.errors import AuthError, PublishError
from autopublish.messages import msg
from autopublish.models import Health, HealthLevel
from autopublish.netguard import Origin
from autopublish.stage import Stage

log = logging.getLogger("autopublish.pipeline")

TOKEN_WARNING_DAYS = 7


class FeedHealth(Stage):
    def _feed_failing(self, name: str) -> None:
        row = self.store.feed(name)
        if row is None or row.failing_since is None:
            return
        down_for = self.clock() - row.failing_since
        if down_for >= self.config.settings.feed_down_after:
            message = msg("alert_feed_down", feed=name, down_seconds=round(down_for), detail=row.last_error or "")
            self._notify(lambda: self.notifier.problem(f"feed:{name}", message))

    def _feed_recovered(self, name: str, failing_since: float | None) -> None:
        if failing_since is not None:
            self._notify(lambda: self.notifier.resolved(f"feed:{name}", msg("alert_feed_ok", feed=name)))


class ChannelHealth(Stage):
    def check_channels(self) -> dict[str, Health]:
        """Ask every channel for its health; record token expiry and warn when it is near."""
        report: dict[str, Health] = {}
        for name, publisher in self.publishers.items():
            if self.lanes.busy(name):
                continue  # posting right now (a publisher is used by one thread at a time); checked next time
            try:
                health = publisher.check()
            except AuthError as exc:
                health = Health(HealthLevel.ERROR, exc.message)
            except PublishError as exc:
                health = Health(HealthLevel.WARNING, f"Could not check: {exc.message}")
            except Exception as exc:  # a check must never take the daemon down
                health = Health(HealthLevel.WARNING, f"Could not check ({type(exc).__name__})")
            report[name] = health
            if health.settles_doubts is False:
                missing = f"; the token lacks {health.missing_permission}" if health.missing_permission else ""
                log.info("Channel %s: posts in doubt cannot be settled automatically%s; an editor checks them (posting is not affected)",
                         name, missing, extra={"channel": name})
            if health.expires_at is not None:
                expires = health.expires_at.timestamp()
                self.store.set_token_expiry(name, expires)
                left = expires - self.clock()
                if left < TOKEN_WARNING_DAYS * 86400:
                    said = msg("token_expiring", channel=name, date=f"{health.expires_at:%Y-%m-%d}", left_seconds=round(max(0, left)))
                    message = str(said)
                    if self.store.open_alert(f"expiry-log:{name}", message, 86400):
                        self.store.log_event("token_expiring", said, channel=name, status="warning")
                    self.notifier.problem(f"expiry:{name}", said)
                else:
                    self.notifier.resolved(f"expiry:{name}", msg("alert_renewed", channel=name))
        return report


class SiteHealth(Stage):
    """Articles with live posts that the site no longer has (optional, ``watch_removed``)."""

    def check_removed(self) -> list[int]:
        """Ask the site for each article with live posts; a 404 or 410 alerts the editors (``watch_removed``).

        Returns the ids of the articles that answered 404/410. Network failures say nothing:
        only the site's own "not found"/"gone" counts.
        """
        settings = self.config.settings
        if not settings.watch_removed:
            return []
        gone: list[int] = []
        for article_id, feed, link, title in self.store.live_articles(self.clock() - settings.watch_removed_for):
            if not link.startswith(("http://", "https://")):
                continue
            feed_config = self.config.feeds.get(feed)
            origin = Origin.of(feed_config.url) if feed_config is not None else None
            try:
                with self.fetcher.open(link, allowed_origin=origin, timeout=(5.0, 10.0), deadline=20.0) as fetched:
                    status = fetched.response.status_code
            except Exception as exc:
                log.info("Could not check whether %s is still on the site (%s)", link, type(exc).__name__)
                continue
            key = f"removed:{article_id}"
            if status in (404, 410):
                gone.append(article_id)
                where = self.retract_address(article_id)
                message = msg("alert_removed", title=title, status=status, link=link, where=where).mapped(self.redact)
                self.notifier.problem(key, message)  # the alerter also writes it to the publish log
            elif status < 400:
                self.notifier.resolved(key, msg("alert_removed_back", title=title))
        return gone

    def retract_address(self, article_id: int) -> str:
        """Where an editor confirms "take down everywhere" for the article."""
        web = self.config.web
        base = web.public_url or f"http://{web.host}:{web.port}"
        return f"{base.rstrip('/')}/articles/{article_id}/retract"

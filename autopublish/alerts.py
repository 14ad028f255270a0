"""Alerts for admins: one plain-words message per open problem per ``repeat``, and one when it is resolved.

Sent to the configured alert channels (any platform) and e-mail. An alert that cannot
be sent is logged and never blocks publishing.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from autopublish.config import Config
from autopublish.feedtext import clean_line
from autopublish.messages import Message
from autopublish.models import Article, Post
from autopublish.platforms.base import Publisher
from autopublish.store import Store

log = logging.getLogger(__name__)


class Alerter:
    def __init__(self, config: Config, store: Store, publishers: dict[str, Publisher[Any]]) -> None:
        self.config = config
        self.store = store
        self.publishers = publishers

    def problem(self, key: str, message: str | Message) -> None:
        """``message`` is logged with its code (the editors' page translates it); admins get the English text."""
        try:
            repeat = self.config.alerts.repeat
            # read first (a paused channel is re-asserted every sweep), write only when due
            if not self.store.alert_due(key, repeat) or not self.store.open_alert(key, str(message), repeat):
                return
            self.store.log_event("alert", message, status="alert")
        except Exception as exc:
            log.error("Could not record an alert (%s)", type(exc).__name__)
            return
        self._send(f"autopublish: {message}", key)

    def resolved(self, key: str, message: str | Message) -> None:
        try:
            if not self.store.alert_is_open(key) or not self.store.resolve_alert(key):  # read first: called every sweep
                return
            self.store.log_event("alert_resolved", message, status="ok")
        except Exception as exc:
            log.error("Could not record a resolved alert (%s)", type(exc).__name__)
            return
        self._send(f"autopublish: resolved: {message}", key + ":resolved")

    def _send(self, text: str, key: str) -> None:
        log.warning("%s", text)
        for name in self.config.alerts.channels:
            publisher = self.publishers.get(name)
            if publisher is None:
                continue
            article = Article(feed="autopublish", key=f"alert:{key}", link="", title="autopublish alert", summary=text, content=text)
            # A repeated alert is a new message: the send time is part of its key, or an
            # alert channel that drops repeats (outbox, webhook receivers) would swallow it.
            digest = hashlib.sha256(f"{key}\x00{text}\x00{self.store.now()}".encode()).hexdigest()[:16]
            post = Post(channel=name, key=f"alert-{digest}", text=text[: publisher.current_limits().max_length],
                        article=article, title="autopublish alert")
            try:
                publisher.publish(post)
            except Exception as exc:  # never block publishing
                log.error("Could not send an alert to channel %s (%s)", name, getattr(exc, "message", type(exc).__name__))
        if self.config.alerts.email and self.config.smtp is not None:
            try:
                self._email(text)
            except Exception as exc:
                log.error("Could not send an alert e-mail (%s)", type(exc).__name__)

    def _email(self, text: str) -> None:
        smtp = self.config.smtp
        assert smtp is not None
        message = EmailMessage()
        message["Subject"] = clean_line(text)[:120]  # one line: a newline in a header is refused (or forges one)
        message["From"] = smtp.sender or smtp.user or "autopublish@localhost"
        message["To"] = ", ".join(self.config.alerts.email)
        message.set_content(text)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=20) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.user and smtp.password is not None:
                client.login(smtp.user, smtp.password.reveal())
            client.send_message(message)

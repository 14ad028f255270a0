"""The local outbox: each post appended as one JSON line to <state_dir>/outbox/<channel>.jsonl.

The embedded default channel, a staging target, and the worked example of the adapter
contract. Reading the file back makes it both idempotent and reconcilable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

from autopublish.errors import PermanentError, TransientError
from autopublish.filemodes import private_dir, private_file
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import PlatformOptions, Publisher


class OutboxOptions(PlatformOptions):
    max_length: int = 5000


class OutboxPublisher(Publisher[OutboxOptions]):
    name = "outbox"
    label = "Outbox"
    Options = OutboxOptions
    limits = PostLimits(max_length=5000, images=True)
    idempotent: ClassVar[bool] = True  # publish() looks for the key before appending
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}\n\n{link}\n\n{hashtags}"

    @property
    def path(self) -> Path:
        return self.env.state_dir / "outbox" / f"{self.channel}.jsonl"

    def current_limits(self) -> PostLimits:
        return PostLimits(max_length=self.options.max_length, images=True)

    def publish(self, post: Post) -> Receipt:
        existing = self.find_existing(post)
        if existing is not None:
            return existing
        record = {
            "delivery": post.key,
            "channel": post.channel,
            "time": self.env.now().isoformat(timespec="seconds"),
            "title": post.article.title,
            "article_link": post.article.link,
            "text": post.text,
            "link": post.link,
            "image": post.image,
            "alt_text": post.alt_text,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            private_dir(self.path.parent)
            private_file(self.path)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self.error(TransientError, f"Could not write to the outbox file {self.path} ({exc.strerror})") from None
        return Receipt(remote_id=post.key, url=self.path.resolve().as_uri() + f"#{post.key}")

    def find_existing(self, post: Post) -> Receipt | None:
        if not self.path.exists():
            return None
        try:
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a torn last line from a crash is not a post
                    if record.get("delivery") == post.key:
                        return Receipt(remote_id=post.key, url=self.path.resolve().as_uri() + f"#{post.key}")
        except OSError as exc:
            raise self.error(TransientError, f"Could not read the outbox file {self.path} ({exc.strerror})") from None
        return None

    def check(self) -> Health:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.error(PermanentError, f"Cannot create the outbox folder {folder} ({exc.strerror})") from None
        if not os.access(folder, os.W_OK):
            return Health(HealthLevel.ERROR, f"The outbox folder {folder} is not writable")
        return Health(HealthLevel.OK, f"Writes posts to {self.path}")

"""Message codes: what the daemon tells editors, as a code with parameters plus its English text.

The store keeps all three (English for logs and old readers; code and parameters so the
editors' page and the CLI can say it in the reader's language, see autopublish.web.i18n).
To add a message: add its code and English template to ``ENGLISH`` (and a translation to
``autopublish.web.i18n.MESSAGES``); a code without a translation falls back to English.

Parameter conventions the renderers rely on:
  ``detail``         a platform's (or feed's) own words: quoted under the sentence, never translated;
  ``*_seconds``      a duration, formatted per language;
  ``*_at``           a Unix time, formatted in the reader's zone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autopublish.durations import format_duration

Param = str | int | float

ENGLISH: dict[str, str] = {
    # a delivery's first status
    "queued": "New article queued",
    "queued_delayed": "New article queued; it waits {delay_seconds} (the channel's delay) before it goes out",
    "skipped_too_old": "Skipped: published more than {max_age_seconds} before it was first seen",
    "skipped_categories": "Skipped: not in the categories this channel takes ({categories})",
    "skipped_excluded_category": "Skipped: in an excluded category ({categories})",
    "skipped_keywords": "Skipped: mentions none of the keywords this channel takes ({keywords})",
    "skipped_excluded_keyword": "Skipped: mentions an excluded keyword ({keyword})",
    "skipped_max_age": "Skipped: older than this channel's max_age ({max_age_seconds})",
    "skipped_needs_image": "Skipped: {platform} needs an image and this article has none",
    "held_flood": "Held by the flood guard: one poll brought {count} new articles (more than {threshold}); an editor must release or skip it",
    # posting
    "sending": "Posting (try {tries})",
    "posted": "Posted",
    "posted_notes": "Posted; {detail}",
    "posted_found": "Posted (found on the platform when checking)",
    "held_paused": "Held: the channel is paused ({detail})",
    "pacing": "Waiting for the channel's pacing rules; goes out after {time_at}",
    "failed_fit": "Failed: {detail}",
    "held_auth": "Held: {detail}",
    "failed_permanent": "Failed: {detail}",
    "held_policy": "Held for an editor: {detail}",
    "waiting_not_ready": "{detail}; next check in {wait_seconds}",
    "failed_not_ready": "Failed: still not ready after {age_seconds}: {detail}",
    "failed_tries": "Failed after {tries} tries: {detail}",
    "failed_gave_up": "Failed: gave up after {age_seconds} of tries: {detail}",
    "failed_rate_limited": "Failed: still rate-limited after {age_seconds}: {detail}",
    "waiting_rate_limited": "Rate-limited: {detail}; next try in {wait_seconds}",
    "waiting_transient": "{detail}; next try in {wait_seconds}",
    "waiting_repeats_dropped": "Not sure it went out; the platform drops repeats, so it will be sent again; next try in {wait_seconds}",
    "uncertain_will_check": "Not sure it was posted: {detail}. autopublish will check the platform before trying again",
    "uncertain_no_check": ("Not sure it was posted: {detail}. This platform cannot be checked automatically; "
                           "an editor must look and mark it posted or not posted"),
    "uncertain_unknown": "Not sure it was posted: {detail}",
    "bad_entry": "An entry of the feed was skipped: {detail}",
    "config_reloaded": "The config was reloaded",
    "interrupted": "autopublish stopped while this was being posted; it will check the platform before trying again",
    # settling doubts
    "resend_idempotent": "Will be sent again; the platform drops repeats of the same post",
    "uncertain_platform_no_check": ("Not sure it was posted, and {platform} cannot be checked automatically; an editor must look "
                                    "and mark it posted or not posted"),
    "not_found": "Not found on the platform; it will be posted again",
    "resend_after_check_failed": ("Could not check {platform} ({detail}); it will be sent again with the same key, which "
                                  "{platform} still remembers, so it cannot appear twice"),
    "uncertain_no_read_back": ("Not sure it was posted, and autopublish may not read the account back: {detail}. "
                               "An editor must look and mark it posted or not posted"),
    "uncertain_no_read_back_needs": ("Not sure it was posted, and autopublish may not read the account back (it needs {permission}): "
                                     "{detail}. An editor must look and mark it posted or not posted"),
    "uncertain_checks_exhausted": ("Not sure it was posted; checking the platform failed {checks} time(s) over {age_seconds} "
                                   "({detail}). An editor must look and mark it posted or not posted"),
    "uncertain_check_again": "Not sure it was posted; checking the platform failed ({detail}); will check again in {wait_seconds}",
    # editors' actions
    "retry": "Retry requested by {actor}",
    "skip": "Skipped by {actor}",
    "resolved_posted": "Marked as posted by {actor}",
    "resolved_not_posted": "Marked as not posted by {actor}; it will be posted",
    "repost_queued": "Re-post requested by {actor}",
    "repost": "Re-post of delivery {id} requested",
    # channels
    "paused_by_platform": "{detail}",
    "paused_by_editor": "Paused by {actor}",
    "paused_by_editor_why": "Paused by {actor}: {detail}",
    "resumed": "Channel resumed; {count} held post(s) back in the queue",
    "resumed_row": "Back in the queue: the channel was resumed",
    "token_expiring": "The credentials of channel \"{channel}\" expire on {date} ({left_seconds} from now); renew them before then",
    # feeds
    "feed_ok": "The feed can be read again",
    "feed_error": "{detail}",
    "poll_new": "{count} new article(s), {queued} post(s) queued",
    "baseline": "First poll of this feed: {count} existing article(s) recorded as already published; {queued} post(s) queued (first_run = \"{mode}\")",
    # alerts (sent to admins in English; logged with their code for the editors' page)
    "alert_feed_down": ("The feed \"{feed}\" has failed for {down_seconds}: {detail}. "
                        "Check that the site is up and the feed's url in the config is right"),
    "alert_feed_ok": "The feed \"{feed}\" can be read again",
    "alert_flood": ("The feed \"{feed}\" brought {count} new articles at once (more than {threshold}); they are held, not posted. "
                    "If the site really published them, release them with autopublish retry (or on the web page); "
                    "if the site changed its addresses, skip them"),
    "alert_paused": "Channel \"{channel}\" is paused and its posts are kept: {detail}",
    "alert_resumed": "Channel \"{channel}\" was resumed and is posting again",
    "alert_posting_again": "Channel \"{channel}\" is posting again",
    "alert_failed": "A post to \"{channel}\" failed for good: \"{title}\". {reason}",
    "alert_uncertain": "An editor must check \"{title}\" on \"{channel}\": {reason}",
    "alert_held": "An editor must look at \"{title}\" on \"{channel}\": {reason}",
    "alert_uncertain_plain": "An editor must check \"{title}\" on \"{channel}\"",
    "alert_renewed": "The credentials of channel \"{channel}\" were renewed",
    # corrections and takedowns (issue 16)
    "updated_in_place": "Updated with the text corrected on the site",
    "deleted_from": "Deleted from {platform}",
    "skipped_not_live": "Skipped: the post is not live, so there is nothing to change",
    "skipped_cannot_edit": "Skipped: {platform} cannot edit posts; correct it by hand{link}",
    "skipped_cannot_delete": "Skipped: {platform} cannot delete posts; remove it by hand{link}",
    "resend_repeatable": "Will be sent again; repeating an edit or a delete changes nothing",
    "alert_removed": ("The article \"{title}\" now answers HTTP {status} on the site ({link}), but its posts are still up. "
                      "If it was withdrawn, take them down with one click at {where} or run: autopublish retract {link}"),
    "alert_removed_back": "The article \"{title}\" answers again on the site",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message: ``code`` names the sentence, ``params`` fill it; ``str()`` is the English text."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)

    @property
    def english(self) -> str:
        return render(ENGLISH.get(self.code, self.code), self.params)

    def __str__(self) -> str:
        return self.english

    def __contains__(self, text: str) -> bool:
        return text in self.english

    def params_json(self) -> str:
        return json.dumps(dict(self.params), ensure_ascii=False, sort_keys=True)

    def mapped(self, change: Callable[[str], str]) -> Message:
        """The same message with ``change`` applied to every text parameter (e.g. a secret redactor)."""
        return Message(self.code, {k: change(v) if isinstance(v, str) else v for k, v in self.params.items()})


def msg(code: str, **params: Param) -> Message:
    """The one way callers build a message: ``msg("failed_tries", tries=3, detail=exc.message)``."""
    return Message(code, params)


def code_of(message: str | Message) -> tuple[str | None, str | None]:
    """(code, params as JSON) to store beside the English text; (None, None) for a plain string."""
    if isinstance(message, Message):
        return message.code, message.params_json()
    return None, None


def load_params(text: str | None) -> dict[str, Any]:
    """Parameters read back from the store; anything damaged reads as no parameters."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def render(template: str, params: Mapping[str, Any], *, duration: Callable[[float], str] = format_duration,
           moment: Callable[[float], str] | None = None) -> str:
    """Fill ``template``; durations and times are formatted, a missing parameter leaves the template as is."""
    when = moment or (lambda ts: datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC"))
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key.endswith("_seconds") and isinstance(value, (int, float)):
            values[key] = duration(float(value))
        elif key.endswith("_at") and isinstance(value, (int, float)):
            values[key] = when(float(value))
        else:
            values[key] = value
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template

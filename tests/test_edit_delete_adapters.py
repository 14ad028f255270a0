"""Issue 16: each adapter's edit() and delete() against its loopback fake, in the platform's wire format."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from autopublish.errors import AuthError, PermanentError
from autopublish.platforms.bluesky import BlueskyPublisher
from autopublish.platforms.discord import DiscordPublisher
from autopublish.platforms.linkedin import LinkedInPublisher
from autopublish.platforms.mastodon import MastodonPublisher
from autopublish.platforms.telegram import TelegramPublisher
from tests.conftest import make_publisher
from tests.contract import CANARY, build_publisher, sample_post
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.discord import DiscordFake
from tests.fakes.linkedin import CONTRACT as LINKEDIN
from tests.fakes.linkedin import TOKEN as LINKEDIN_TOKEN
from tests.fakes.linkedin import LinkedInFake, channel_options, render_little
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.telegram import TelegramFake
from tests.fakes.webhook import CONTRACT as WEBHOOK
from tests.fakes.webhook import verify
from tests.fakes.x import CONTRACT as X_CONTRACT


def corrected(post: Any, text: str) -> Any:
    return dataclasses.replace(post, text=text)


# --- Mastodon: PUT and DELETE /api/v1/statuses/:id ------------------------------------------


@pytest.fixture
def mastodon(platform_fake) -> FakeMastodon:
    return platform_fake(FakeMastodon(lifetime=60))


def make_mastodon(fake: FakeMastodon, tmp_path: Path) -> MastodonPublisher:
    keys = {"instance": fake.url, "access_token": "${MASTODON_TOKEN}"}
    return make_publisher(MastodonPublisher, keys, tmp_path, env={"MASTODON_TOKEN": CANARY}, channel="social")


def test_mastodon_edit_replaces_the_text_and_keeps_the_image(mastodon, tmp_path):
    publisher = make_mastodon(mastodon, tmp_path)
    post = sample_post(image=mastodon.image_url())
    receipt = publisher.publish(post)
    assert mastodon.statuses[0]["media_attachments"]
    again = publisher.edit(receipt, corrected(post, "Judul yang dikoreksi https://example.org/a"))
    assert again.remote_id == receipt.remote_id
    put = [r for r in mastodon.requests if r.method == "PUT"]
    assert put[0].path == f"/api/v1/statuses/{receipt.remote_id}"
    assert mastodon.statuses[0]["text"] == "Judul yang dikoreksi https://example.org/a"
    assert mastodon.statuses[0]["media_attachments"]  # no media_ids sent: the image stays
    assert mastodon.posts == 1


def test_mastodon_delete_then_delete_again_is_done(mastodon, tmp_path):
    publisher = make_mastodon(mastodon, tmp_path)
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)
    assert mastodon.posts == 0
    publisher.delete(receipt)  # 404: already gone
    assert [r.method for r in mastodon.requests if r.path.startswith("/api/v1/statuses/")] == ["DELETE", "DELETE"]


def test_mastodon_edit_of_a_deleted_post_fails_plainly(mastodon, tmp_path):
    publisher = make_mastodon(mastodon, tmp_path)
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)
    with pytest.raises(PermanentError, match="no longer on Mastodon"):
        publisher.edit(receipt, sample_post())


def test_mastodon_edit_without_write_scope_is_an_auth_problem(mastodon, tmp_path):
    publisher = make_mastodon(mastodon, tmp_path)
    receipt = publisher.publish(sample_post())
    mastodon.grant({"read"})
    with pytest.raises(AuthError):
        publisher.edit(receipt, corrected(sample_post(), "x"))
    with pytest.raises(AuthError):
        publisher.delete(receipt)
    assert mastodon.posts == 1


# --- Telegram: editMessageText / editMessageCaption / deleteMessage ----------------------------


@pytest.fixture
def telegram(platform_fake) -> TelegramFake:
    return platform_fake(TelegramFake(lifetime=60))


def make_telegram(fake: TelegramFake, tmp_path: Path, token: str = CANARY) -> TelegramPublisher:
    keys = {"api_base": fake.url, "bot_token": "${TELEGRAM_BOT_TOKEN}", "chat": "@examplechannel"}
    return make_publisher(TelegramPublisher, keys, tmp_path, env={"TELEGRAM_BOT_TOKEN": token}, channel="news")


def _method(request: Any) -> str:
    return str(request.path.rsplit("/", 1)[-1])


def test_telegram_edits_a_text_message_with_edit_message_text(telegram, tmp_path):
    publisher = make_telegram(telegram, tmp_path)
    receipt = publisher.publish(sample_post(text="Lama & usang"))
    publisher.edit(receipt, sample_post(text="Baru & benar"))
    assert telegram.messages[0]["text"] == "Baru & benar"
    assert telegram.messages[0]["raw"] == "Baru &amp; benar"  # escaped for parse_mode HTML, as when posting
    publisher.edit(receipt, sample_post(text="Baru & benar"))  # "message is not modified": already done
    assert [_method(r) for r in telegram.requests][-2:] == ["editMessageText", "editMessageText"]


def test_telegram_edits_a_photo_caption_with_edit_message_caption(telegram, tmp_path):
    publisher = make_telegram(telegram, tmp_path)
    receipt = publisher.publish(sample_post(image=telegram.image_url(), text="Keterangan lama"))
    assert "photo" in telegram.messages[0]
    publisher.edit(receipt, sample_post(image=telegram.image_url(), text="Keterangan baru"))
    assert telegram.messages[0]["caption"] == "Keterangan baru"
    assert [_method(r) for r in telegram.requests][-2:] == ["editMessageText", "editMessageCaption"]


def test_telegram_delete_and_delete_again(telegram, tmp_path):
    publisher = make_telegram(telegram, tmp_path)
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)
    assert telegram.messages == []
    publisher.delete(receipt)  # "message to delete not found": already gone


def test_telegram_delete_with_a_bad_token_is_not_taken_for_gone(telegram, tmp_path):
    receipt = make_telegram(telegram, tmp_path).publish(sample_post())
    with pytest.raises(AuthError):
        make_telegram(telegram, tmp_path, token="123:wrong").delete(receipt)
    assert len(telegram.messages) == 1


# --- Discord: PATCH / DELETE {webhook}/messages/{id} -----------------------------------------



@pytest.fixture
def discord(platform_fake) -> DiscordFake:
    return platform_fake(DiscordFake(lifetime=60))


def make_discord(fake: DiscordFake, tmp_path: Path, url: str | None = None) -> DiscordPublisher:
    keys = {"webhook_url": "${DISCORD_WEBHOOK_URL}", "username": "Berita"}
    return make_publisher(DiscordPublisher, keys, tmp_path, env={"DISCORD_WEBHOOK_URL": url or fake.webhook_url}, channel="discord")


def test_discord_edit_patches_the_webhook_message(discord, tmp_path):
    publisher = make_discord(discord, tmp_path)
    receipt = publisher.publish(sample_post(text="Judul lama"))
    publisher.edit(receipt, sample_post(text="Judul baru"))
    patch = [r for r in discord.requests if r.method == "PATCH"]
    assert patch[0].path.endswith(f"/messages/{receipt.remote_id}")
    assert "username" not in patch[0].json  # the edit endpoint does not take the sender's name
    assert patch[0].json["allowed_mentions"] == {"parse": []}
    assert discord.messages[receipt.remote_id]["content"] == "Judul baru"
    assert len(discord.messages) == 1


def test_discord_delete_and_delete_again(discord, tmp_path):
    publisher = make_discord(discord, tmp_path)
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)
    assert discord.messages == {}
    publisher.delete(receipt)  # Unknown Message: already gone
    with pytest.raises(PermanentError, match="no longer in the Discord channel"):
        publisher.edit(receipt, sample_post())


def test_discord_delete_through_a_removed_webhook_is_an_auth_problem(discord, tmp_path):
    receipt = make_discord(discord, tmp_path).publish(sample_post())
    discord.deleted = True  # Unknown Webhook (10015) is not "message already gone"
    with pytest.raises(AuthError):
        make_discord(discord, tmp_path).delete(receipt)


# --- LinkedIn: partial update of the commentary, DELETE /rest/posts/{urn} ------------------------



@pytest.fixture
def linkedin(platform_fake) -> LinkedInFake:
    return platform_fake(LinkedInFake(token=LINKEDIN_TOKEN, lifetime=60))


def make_linkedin(fake: LinkedInFake, tmp_path: Path) -> LinkedInPublisher:
    return make_publisher(LinkedInPublisher, channel_options(fake), tmp_path, env=LINKEDIN.env, channel="news")


def test_linkedin_edit_patches_only_the_commentary(linkedin, tmp_path):
    publisher = make_linkedin(linkedin, tmp_path)
    receipt = publisher.publish(sample_post(text="Judul lama (koreksi)"))
    publisher.edit(receipt, sample_post(text="Judul baru (sudah dikoreksi)"))
    change = [r for r in linkedin.requests if r.path.startswith("/rest/posts/")]
    assert change[0].header("x-restli-method") == "PARTIAL_UPDATE"
    assert list(change[0].json["patch"]["$set"]) == ["commentary"]
    assert render_little(linkedin.posts[0]["commentary"]) == "Judul baru (sudah dikoreksi)"  # reserved characters escaped
    assert len(linkedin.posts) == 1


def test_linkedin_delete_is_idempotent(linkedin, tmp_path):
    publisher = make_linkedin(linkedin, tmp_path)
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)
    publisher.delete(receipt)
    assert linkedin.posts == [] and len(linkedin.deleted) == 1
    with pytest.raises(PermanentError, match="no longer on the LinkedIn Page"):
        publisher.edit(receipt, sample_post())


def test_linkedin_edit_without_write_permission_is_an_auth_problem(linkedin, tmp_path):
    publisher = make_linkedin(linkedin, tmp_path)
    receipt = publisher.publish(sample_post())
    linkedin.grant({"r_organization_social"})
    with pytest.raises(AuthError):
        publisher.edit(receipt, sample_post(text="x"))


# --- X: DELETE /2/tweets/:id (no edit through the API) ---------------------------------------



def test_x_deletes_with_a_signed_delete_and_cannot_edit(platform_fake, tmp_path):
    fake = platform_fake(X_CONTRACT.make_fake())
    publisher = build_publisher(X_CONTRACT, fake, tmp_path)
    assert publisher.can_delete and not publisher.can_edit
    receipt = publisher.publish(sample_post())
    publisher.delete(receipt)  # the fake checks the OAuth 1.0a signature of the DELETE
    assert fake.posts == [] and len(fake.deleted) == 1
    publisher.delete(receipt)  # 404: already gone
    assert fake.rejected_signatures == 0


def test_x_delete_without_write_permission_is_an_auth_problem(platform_fake, tmp_path):
    fake = platform_fake(X_CONTRACT.make_fake())
    publisher = build_publisher(X_CONTRACT, fake, tmp_path)
    receipt = publisher.publish(sample_post())
    fake.grant({"read", "tier:free"})
    with pytest.raises(AuthError):
        publisher.delete(receipt)
    assert len(fake.posts) == 1


# --- Bluesky: com.atproto.repo.deleteRecord (no edit) ------------------------------------------



def make_bluesky(fake: FakeBluesky, tmp_path: Path) -> BlueskyPublisher:
    keys = {"service": fake.url, "handle": "berita.bsky.social", "app_password": "${BLUESKY_APP_PASSWORD}"}
    return make_publisher(BlueskyPublisher, keys, tmp_path, env={"BLUESKY_APP_PASSWORD": CANARY}, channel="bluesky")


def test_bluesky_deletes_the_record_at_its_rkey_and_cannot_edit(platform_fake, tmp_path):
    fake = platform_fake(FakeBluesky(lifetime=60))
    publisher = make_bluesky(fake, tmp_path)
    assert publisher.can_delete and not publisher.can_edit
    receipt = publisher.publish(sample_post())
    rkey = receipt.remote_id.rsplit("/", 1)[-1]
    publisher.delete(receipt)
    assert fake.records == {} and fake.deleted == [rkey]
    publisher.delete(receipt)  # "or ensure it doesn't exist": already gone is fine
    calls = [r for r in fake.requests if r.path.endswith("deleteRecord")]
    assert calls[0].json == {"repo": fake.did, "collection": "app.bsky.feed.post", "rkey": rkey}


def test_bluesky_delete_with_a_revoked_password_is_an_auth_problem(platform_fake, tmp_path):
    fake = platform_fake(FakeBluesky(lifetime=60))
    receipt = make_bluesky(fake, tmp_path).publish(sample_post())
    fake.password = "revoked"
    fake.revoke_refresh_tokens()
    fake.expire_access_tokens()
    with pytest.raises(AuthError):
        make_bluesky(fake, tmp_path / "other").delete(receipt)
    assert fake.posts == 1


# --- webhook: signed article.updated / article.deleted events --------------------------------



def test_webhook_sends_signed_update_and_delete_events(platform_fake, tmp_path):
    fake = platform_fake(WEBHOOK.make_fake())
    publisher = build_publisher(WEBHOOK, fake, tmp_path)
    post = sample_post(key="ap-7-abc")
    receipt = publisher.publish(post)
    publisher.edit(receipt, corrected(post, "Judul baru"))
    publisher.edit(receipt, corrected(post, "Judul lebih baru"))
    updates = [c for c in fake.changes if c["json"]["type"] == "article.updated"]
    assert [u["json"]["text"] for u in updates] == ["Judul baru", "Judul lebih baru"]
    assert len({u["id"] for u in updates}) == 2  # each correction has its own delivery id
    assert all(u["json"]["post_id"] == "ap-7-abc" for u in updates)
    publisher.delete(receipt)
    assert fake.deliveries == []
    publisher.delete(receipt)  # the receiver no longer knows the post (404): already gone
    last = [r for r in fake.requests if r.method == "POST"][-1]
    assert verify(CANARY, last) == ""  # signed like a post


def test_webhook_refusing_a_change_with_a_bad_secret_is_an_auth_problem(platform_fake, tmp_path):
    fake = platform_fake(WEBHOOK.make_fake())
    publisher = build_publisher(WEBHOOK, fake, tmp_path)
    receipt = publisher.publish(sample_post())
    fake.secret = "another-secret"
    with pytest.raises(AuthError):
        publisher.delete(receipt)
    assert len(fake.deliveries) == 1


# --- Slack: with a bot token, chat.postMessage / chat.update / chat.delete ------------------------


def make_slack(fake: Any, tmp_path: Path, **options: Any) -> Any:
    from autopublish.platforms.slack import SlackPublisher

    keys = {"bot_token": "${SLACK_BOT_TOKEN}", "channel_id": fake.channel_id, "api_base": fake.url, **options}
    return make_publisher(SlackPublisher, keys, tmp_path, env={"SLACK_BOT_TOKEN": fake.bot_token}, channel="slack")


def test_slack_with_a_bot_token_posts_updates_and_deletes(platform_fake, tmp_path):
    from tests.fakes.slack import SlackFake

    fake = platform_fake(SlackFake(lifetime=60))
    publisher = make_slack(fake, tmp_path)
    assert type(publisher).edits_with(publisher.options) and type(publisher).deletes_with(publisher.options)
    receipt = publisher.publish(sample_post(text="Judul lama <!channel> & co"))
    assert receipt.remote_id == f"{fake.channel_id}/{fake.messages[0]['ts']}"
    assert fake.messages[0]["mentions"] == []  # escaped as when posting through a webhook
    publisher.edit(receipt, sample_post(text="Judul baru"))
    assert fake.messages[0]["shown"][0] == "Judul baru" and fake.messages[0]["edited"]
    publisher.delete(receipt)
    assert fake.messages == []
    publisher.delete(receipt)  # message_not_found: already gone
    with pytest.raises(PermanentError, match="no longer in the Slack channel"):
        publisher.edit(receipt, sample_post(text="x"))
    assert publisher.check().level.value == "ok"


def test_slack_through_a_webhook_cannot_edit_or_delete(platform_fake, tmp_path):
    from autopublish.platforms.slack import SlackOptions, SlackPublisher
    from tests.fakes.slack import SlackFake

    fake = platform_fake(SlackFake(lifetime=60))
    opts = SlackOptions.model_validate({"webhook_url": "${SLACK_WEBHOOK_URL}"}, context={"env": {"SLACK_WEBHOOK_URL": fake.webhook_url}})
    assert not SlackPublisher.edits_with(opts) and not SlackPublisher.deletes_with(opts)
    with pytest.raises(ValueError, match="either webhook_url"):
        SlackOptions.model_validate({"webhook_url": "${A}", "bot_token": "${B}", "channel_id": "C1"},
                                    context={"env": {"A": fake.webhook_url, "B": "xoxb-1"}})


def test_slack_bot_without_chat_write_is_an_auth_problem(platform_fake, tmp_path):
    from tests.fakes.slack import SlackFake

    fake = platform_fake(SlackFake(lifetime=60))
    publisher = make_slack(fake, tmp_path)
    receipt = publisher.publish(sample_post())
    fake.bot_scopes = set()
    with pytest.raises(AuthError, match="chat:write"):
        publisher.delete(receipt)
    assert len(fake.messages) == 1
    assert fake.bot_token not in str(publisher.options)

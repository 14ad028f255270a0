"""The one Graph error table, and the three decisions it pins for Facebook, Threads and Instagram alike.

Before platforms/meta/, Facebook and Threads/Instagram had two tables that disagreed on 368,
on token subcodes without code 190, and on link matching across http -> https.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from autopublish.errors import AuthError, HeldError, NotReadyError, PermanentError, PublishError, RateLimitedError, UncertainError
from autopublish.models import Post
from autopublish.platforms.base import Publisher
from autopublish.platforms.meta.graph import GraphError, Kind, classify, link_key, mentions_link
from tests.contract import build_publisher, publish_when_ready, sample_post
from tests.fakes import facebook, instagram, threads
from tests.fakes.base import FakeServer, Response

CASES = {"facebook": facebook.CONTRACT, "threads": threads.CONTRACT, "instagram": instagram.CONTRACT}


@pytest.mark.parametrize(
    "code, subcode, status, transient, kind",
    [
        (368, 1390008, 400, False, Kind.POSTING_TOO_FAST),
        (368, None, 400, False, Kind.POLICY_BLOCK),
        (368, 1404078, 400, False, Kind.POLICY_BLOCK),
        (190, None, 400, False, Kind.TOKEN),
        (102, None, 400, False, Kind.TOKEN),
        (100, 460, 400, False, Kind.TOKEN),  # a token subcode alone is enough
        (None, 463, 400, False, Kind.TOKEN),
        (None, None, 401, False, Kind.TOKEN),
        (10, None, 403, False, Kind.PERMISSION),
        (200, None, 403, False, Kind.PERMISSION),
        (4, None, 400, True, Kind.RATE_LIMIT),
        (80001, None, 400, False, Kind.RATE_LIMIT),
        (9, 2207042, 400, False, Kind.QUOTA),
        (4, 2207051, 400, False, Kind.SPAM),
        (24, 4279009, 400, False, Kind.NOT_READY),
        (9007, 2207027, 400, False, Kind.NOT_READY),
        (-2, 2207020, 400, False, Kind.CONTAINER_GONE),
        (506, None, 400, False, Kind.DUPLICATE),
        (1, None, 500, True, Kind.SERVER),
        (2, None, 400, False, Kind.SERVER),
        (9999, None, 400, True, Kind.SERVER),
        (324, None, 400, False, Kind.BAD_IMAGE),
        (9004, 2207083, 400, False, Kind.BAD_IMAGE),
        (100, None, 400, False, Kind.OTHER),
    ],
)
def test_one_table(code, subcode, status, transient, kind):
    assert classify(GraphError(status=status, code=code, subcode=subcode, transient=transient)) is kind


def test_the_envelope_masks_secrets_and_keeps_the_platforms_words():
    body = {"error": {"message": "Bad token SECRET-1", "error_user_msg": "You can't post right now", "code": 368, "error_subcode": 7,
                      "type": "OAuthException", "fbtrace_id": "Ab", "is_transient": False}}
    error = GraphError.from_body(400, body, ["SECRET-1"])
    assert "SECRET-1" not in error.message + error.detail
    assert error.reason == "You can't post right now" and error.code == 368 and error.subcode == 7


def test_links_are_compared_as_the_feeds_canonical_links():
    assert link_key("http://www.example.go.id/berita/a/") == link_key("https://example.go.id/berita/a")
    assert mentions_link("Baca di http://example.go.id/berita/a?utm_source=x.", "https://www.example.go.id/berita/a/")
    assert not mentions_link("Baca di https://example.go.id/berita/b", "https://example.go.id/berita/a")


# --- the same behaviour on all three platforms ------------------------------------------------
@pytest.fixture(params=sorted(CASES))
def platform(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake(platform: str, platform_fake) -> FakeServer:
    return platform_fake(CASES[platform].make_fake())


def publisher_for(platform: str, fake: FakeServer, tmp_path) -> Publisher:
    return build_publisher(CASES[platform], fake, tmp_path)


def fail_publish(platform: str, fake: FakeServer, code: int, subcode: int | None, message: str = "",
                 headers: dict[str, str] | None = None) -> None:
    text = message or f"(#{code}) refused"
    if platform == "facebook":
        fake.fail_next(code=code, subcode=subcode, message=text, headers=headers)  # type: ignore[attr-defined]
    else:
        fake.inject(threads.graph_error(400, text, code, subcode=subcode, headers=headers), fake.is_publish)  # type: ignore[attr-defined]


def answer_publish(platform: str, fake: FakeServer, response: Response) -> None:
    """The publishing call gets exactly ``response`` (a proxy's page, no Graph envelope)."""
    if platform == "facebook":
        fake.answer_next(response)  # type: ignore[attr-defined]
    else:
        fake.inject(response, fake.is_publish)  # type: ignore[attr-defined]


def attempt(publisher: Publisher, post: Post, fake: FakeServer) -> PublishError:
    with pytest.raises(PublishError) as info:
        publish_when_ready(publisher, post, fake)
    return info.value


def test_368_posting_too_fast_is_a_long_rate_limit_everywhere(platform, fake, tmp_path):
    fail_publish(platform, fake, 368, 1390008)
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is RateLimitedError and error.code == 368 and error.retry_after == 6 * 3600


def test_other_368s_are_policy_blocks_held_for_an_editor_everywhere(platform, fake, tmp_path):
    fail_publish(platform, fake, 368, None, "(#368) The action attempted has been deemed abusive or is otherwise disallowed")
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is HeldError
    assert "deemed abusive" in error.message and CASES[platform].posts(fake) == 0


def test_a_token_subcode_without_code_190_pauses_everywhere(platform, fake, tmp_path):
    fail_publish(platform, fake, 100, 460)
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is AuthError and "password" in error.message


def test_an_unknown_refusal_names_the_code_and_metas_own_words_everywhere(platform, fake, tmp_path):
    """An editor reads Meta's sentence: the code alone does not say what to fix."""
    fail_publish(platform, fake, 99999, None, "(#99999) The post cannot be shared to this destination")
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is PermanentError and error.code == 99999
    assert "refused the request (error 99999)" in error.message and "cannot be shared to this destination" in error.message


TOKEN_NAMES = {"facebook": "Page token", "threads": "access token", "instagram": "access token"}
ENV_NAMES = {"facebook": "FACEBOOK_PAGE_TOKEN", "threads": "THREADS_TOKEN", "instagram": "INSTAGRAM_TOKEN"}


@pytest.mark.parametrize(
    "subcode, message, said, expires_at",
    [
        (463, "Error validating access token: Session has expired on Friday, 27-Nov-26 08:00:00 PST.", "expired on 27 November 2026",
         datetime(2026, 11, 27, 16, 0, tzinfo=UTC)),
        (463, "Error validating access token: Session has expired", "has expired", None),
        (467, "Error validating access token: The session is invalid because the user logged out.", "is invalid or was revoked", None),
        (460, "Error validating access token: The session has been invalidated", "is no longer valid because the password", None),
    ],
)
def test_a_dead_token_pauses_the_channel_in_the_same_words_everywhere(platform, fake, tmp_path, subcode, message, said, expires_at):
    fail_publish(platform, fake, 190, subcode, message)
    publisher = publisher_for(platform, fake, tmp_path)
    error = attempt(publisher, sample_post(image=fake.image_url()), fake)
    assert type(error) is AuthError and error.code == 190 and f"190/{subcode}" in (error.detail or "")
    assert error.message.startswith(f"{publisher.label} says the {TOKEN_NAMES[platform]} {said}")
    assert f"put it in .env as {ENV_NAMES[platform]} and run: autopublish resume test" in error.message
    assert error.expires_at == expires_at
    assert CASES[platform].posts(fake) == 0


def test_a_call_rate_limit_waits_as_long_as_the_usage_header_says_everywhere(platform, fake, tmp_path):
    usage = {"1234": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 42}]}
    fail_publish(platform, fake, 32, None, "(#32) Page request limit reached", headers={"X-Business-Use-Case-Usage": json.dumps(usage)})
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is RateLimitedError and error.code == 32 and error.retry_after == 42 * 60


@pytest.mark.parametrize(
    "status, headers, expected, retry_after",
    [
        (401, {}, AuthError, None),
        (429, {"Retry-After": "120"}, RateLimitedError, 120),
        (502, {}, UncertainError, None),  # the publishing call may have gone through
        (404, {}, PermanentError, None),
    ],
)
def test_an_answer_without_graph_envelope_takes_the_shared_http_rules_everywhere(platform, fake, tmp_path, status, headers, expected,
                                                                                 retry_after):
    answer_publish(platform, fake, Response(status, b"<html>proxy page</html>", {"Content-Type": "text/html", **headers}))
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is expected and error.code == status
    if retry_after is not None:
        assert error.retry_after == retry_after
    if expected is AuthError:
        assert f"put it in .env as {ENV_NAMES[platform]} and run: autopublish resume test" in error.message
    assert "<html>" not in error.message


def test_code_2_on_the_publishing_call_is_uncertain_everywhere(platform, fake, tmp_path):
    fail_publish(platform, fake, 2, None)
    error = attempt(publisher_for(platform, fake, tmp_path), sample_post(image=fake.image_url()), fake)
    assert type(error) is UncertainError


def test_read_back_matches_a_post_made_before_the_site_moved_to_https(platform, fake, tmp_path):
    publisher = publisher_for(platform, fake, tmp_path)
    old = sample_post(image=fake.image_url())
    http_link = "http://www.example.go.id/berita/myanmar-cordaid"
    old = replace(old, link=http_link, article=replace(old.article, link=http_link), text=f"Kunjungan delegasi {http_link}")
    receipt = publish_when_ready(publisher, old, fake)
    now = sample_post(image=fake.image_url(), text="Teks lain sama sekali")  # https, www-less, trailing slash
    found = publisher.find_existing(now)
    assert found is not None and found.remote_id == receipt.remote_id


def test_not_ready_is_never_a_failure(platform, fake, tmp_path):
    if platform == "facebook":
        pytest.skip("Facebook publishes in one step")
    with pytest.raises(NotReadyError) as info:
        publisher_for(platform, fake, tmp_path).publish(sample_post(image=fake.image_url()))
    assert info.value.progress and CASES[platform].posts(fake) == 0


# --- the core: a policy block holds the post for an editor, with one alert, and never pauses ---
def test_a_policy_block_holds_each_post_for_an_editor_with_one_alert_key_and_keeps_the_channel(tmp_path):
    from autopublish.app import open_app
    from autopublish.config import load_config
    from tests.contract import CANARY
    from tests.fakes.feed_server import FeedServer, older_items, seed_item
    from tests.helpers import AlertRecorder, write_config

    with FeedServer(older_items(2)) as site, facebook.FakeGraph() as graph:
        table = (f'[channels.page]\nplatform = "facebook"\npage_id = "{graph.page_id}"\naccess_token = "${{FACEBOOK_PAGE_TOKEN}}"\n'
                 f'api_base = "{graph.url}"\nrescrape = false\n')
        path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="page", extra=table)
        recorder = AlertRecorder()
        app = open_app(load_config(path, {"FACEBOOK_PAGE_TOKEN": CANARY}, cwd=tmp_path), notifier=recorder)
        try:
            app.pipeline.poll_all()
            site.add(seed_item())
            app.pipeline.poll_all()
            graph.fail_next(code=368, message="(#368) The action attempted has been deemed abusive or is otherwise disallowed")
            app.pipeline.deliver_due()
            [row] = app.store.deliveries_with_status("held")
            assert row.needs_editor and "deemed abusive" in row.reason
            assert not app.store.channel("page").paused  # other articles still go out
            assert [key for key, _ in recorder.problems] == ["held:page"]
            assert app.store.resume_channel("page") == 0  # an editor, not a resume, releases it
            assert app.store.retry(row.id, "editor")
            app.pipeline.deliver_due()
            assert len(graph.posts) == 1 and app.store.deliveries_with_status("sent")
        finally:
            app.close()

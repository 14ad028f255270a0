"""Bluesky adapter against the loopback PDS fake (no mocks of our own code)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import regex
import requests
from pydantic import ValidationError

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.bluesky import BlueskyOptions, BlueskyPublisher, build_rich_text, count_post, record_key, short_url
from tests.conftest import make_publisher
from tests.contract import CANARY, errors_under_faults, publish_under_fault, sample_post
from tests.fakes.base import Response
from tests.fakes.bluesky import TID, FakeBluesky

FAMILY = "👨‍👩‍👧‍👦"
LINK = "https://example.go.id/berita/myanmar-cordaid/"
PREFIXES = {
    "indonesian": "Mendampingi CRO menerima kunjungan dari Pemerintah Myanmar —",
    "chinese": "雅加达韧性城市：首席韧性官接待缅甸代表团。",
    "arabic": "استقبال وفد ميانمار في جاكرتا،",
    "hindi": "जकार्ता में म्यांमार प्रतिनिधिमंडल का स्वागत क्षि",
    "emoji": f"Keluarga {FAMILY} berkunjung 🇮🇩 👍🏽",
}


@pytest.fixture
def fake(platform_fake) -> FakeBluesky:
    return platform_fake(FakeBluesky(lifetime=60))


def make(fake: FakeBluesky, tmp_path: Path, *, now=None, **options: object) -> BlueskyPublisher:
    raw = {"service": fake.url, "handle": "berita.bsky.social", "app_password": "${BLUESKY_APP_PASSWORD}", **options}
    return make_publisher(BlueskyPublisher, raw, tmp_path, env={"BLUESKY_APP_PASSWORD": CANARY}, channel="bluesky", now=now)


def creates(fake: FakeBluesky) -> list:
    return [r for r in fake.requests if fake.is_publish(r)]


def only_record(fake: FakeBluesky) -> dict:
    assert len(fake.records) == 1
    return next(iter(fake.records.values()))["value"]


# --- config -------------------------------------------------------------------------------


def test_config_as_written_in_the_issue_validates():
    opts = BlueskyOptions.model_validate(
        {"service": "https://bsky.social", "handle": "example.bsky.social", "app_password": "${BLUESKY_APP_PASSWORD}"},
        context={"env": {"BLUESKY_APP_PASSWORD": CANARY}},
    )
    assert (opts.service, opts.handle) == ("https://bsky.social", "example.bsky.social")
    assert CANARY not in repr(opts)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("handle", "not a handle", "example.bsky.social"),
        ("service", "bsky.social", "http(s) address"),  # the shared BaseUrl's words
        ("service", "https://bsky.social/xrpc", "no path"),
        ("langs", ["id", "en", "zh", "ar"], "at most 3"),
        ("langs", ["Bahasa Indonesia"], "language tag"),
    ],
)
def test_bad_options_say_what_to_write(key, value, words):
    raw = {"handle": "example.bsky.social", "app_password": "${P}", key: value}
    with pytest.raises(ValidationError) as info:
        BlueskyOptions.model_validate(raw, context={"env": {"P": CANARY}})
    assert words in str(info.value)


def test_handle_may_be_written_with_an_at_sign():
    opts = BlueskyOptions.model_validate({"handle": "@Example.bsky.social", "app_password": "${P}"}, context={"env": {"P": "x" * 8}})
    assert opts.handle == "example.bsky.social"


# --- facets and length --------------------------------------------------------------------


@pytest.mark.parametrize("language", PREFIXES)
@pytest.mark.parametrize("shorten", [True, False])
def test_link_facet_sits_at_the_right_utf8_bytes(fake, tmp_path, language, shorten):
    text = f"{PREFIXES[language]} {LINK} #Jakarta"
    publisher = make(fake, tmp_path, shorten_links=shorten)
    publisher.publish(sample_post(text=text))  # the fake rejects wrong offsets
    record = only_record(fake)
    data = record["text"].encode("utf-8")
    link, tag = record["facets"]
    shown = data[link["index"]["byteStart"] : link["index"]["byteEnd"]].decode("utf-8")
    assert link["features"][0]["uri"] == LINK
    assert shown == (short_url(LINK) if shorten else LINK)
    assert record["text"].startswith(PREFIXES[language] + " ")
    assert data[tag["index"]["byteStart"] : tag["index"]["byteEnd"]].decode() == "#Jakarta"
    assert tag["features"][0] == {"$type": "app.bsky.richtext.facet#tag", "tag": "Jakarta"}


def test_byte_offsets_differ_from_character_offsets():
    rich = build_rich_text(f"{FAMILY} {LINK}", shorten_links=False)
    (facet,) = rich.facets
    assert rich.text.index(LINK) == len(FAMILY) + 1  # 7 code points + space
    assert facet["index"]["byteStart"] == len(FAMILY.encode()) + 1 == 26
    assert facet["index"]["byteEnd"] == 26 + len(LINK)


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("#Berita #JakartaBerketahanan #Kegiatan", ["Berita", "JakartaBerketahanan", "Kegiatan"]),
        ("Akhir kalimat #berita. Lalu #东京, dan #مرحبا!", ["berita", "东京", "مرحبا"]),
        ("Bukan tag: #2024 a#b https://example.org/#anchor", []),
        ("＃全角 hashtag", ["全角"]),
    ],
)
def test_hashtag_facets(text, tags):
    rich = build_rich_text(text)
    found = [f["features"][0]["tag"] for f in rich.facets if f["features"][0]["$type"].endswith("#tag")]
    assert found == tags
    data = rich.text.encode()
    for facet in rich.facets:
        covered = data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()
        feature = facet["features"][0]
        if "tag" in feature:
            assert covered[1:] == feature["tag"]


def test_urls_are_shown_like_the_bluesky_app():
    assert short_url(LINK) == "example.go.id/berita/myanm..."
    assert short_url("https://www.example.org/") == "example.org"
    assert short_url("https://example.org/a/b") == "example.org/a/b"
    assert build_rich_text("Baca (https://example.org/a).").text == "Baca (example.org/a)."


@pytest.mark.parametrize("language", PREFIXES)
def test_count_is_graphemes_of_the_text_as_sent(language):
    prefix = PREFIXES[language]
    expected = len(regex.findall(r"\X", prefix)) + 1 + len(short_url(LINK))
    assert count_post(f"{prefix} {LINK}") == max(expected, -(-len(f"{prefix} {short_url(LINK)}".encode()) // 10))
    assert count_post(FAMILY) == 3  # 1 grapheme but 25 bytes: the 3000-byte rule, scaled to 300


def test_300_graphemes_are_never_exceeded(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.current_limits().max_length == 300
    units = ["kata ", "北", "م", "क्षि", FAMILY, "é", f" {LINK} "]
    text = "".join(units[i % len(units)] for i in range(900))
    # Shorten grapheme by grapheme, as a fitter would, until the adapter's count allows it.
    clusters = regex.findall(r"\X", text)
    while publisher.count("".join(clusters)) > 300:
        clusters.pop()
    fitted = "".join(clusters)
    publisher.publish(sample_post(text=fitted))
    sent = only_record(fake)["text"]
    assert len(regex.findall(r"\X", sent)) <= 300 and len(sent.encode()) <= 3000


def test_text_over_the_limit_is_refused_before_sending(fake, tmp_path):
    with pytest.raises(PermanentError) as info:
        make(fake, tmp_path).publish(sample_post(text="a" * 301))
    assert "300" in info.value.message
    with pytest.raises(PermanentError):
        make(fake, tmp_path).publish(sample_post(text=FAMILY * 150))  # 150 graphemes, 3750 bytes
    assert not creates(fake)


# --- the record -----------------------------------------------------------------------------


def test_record_has_card_thumb_langs_and_receipt(fake, tmp_path):
    post = sample_post(image=fake.image_url(), key="delivery-9")
    receipt = make(fake, tmp_path).publish(post)
    rkey = record_key("delivery-9")
    assert receipt.remote_id == f"at://{fake.did}/app.bsky.feed.post/{rkey}"
    assert receipt.url == f"https://bsky.app/profile/berita.bsky.social/post/{rkey}"
    record = only_record(fake)
    assert record["langs"] == ["id"]
    external = record["embed"]["external"]
    assert (external["uri"], external["title"]) == (post.link, post.title)
    assert external["description"] == post.description
    assert external["thumb"]["ref"]["$link"] in fake.blobs
    assert record["createdAt"].endswith("Z")


def test_without_a_link_the_image_is_embedded_with_alt_text(fake, tmp_path):
    post = replace(sample_post(image=fake.image_url(), text="Foto kegiatan hari ini"), link=None)
    make(fake, tmp_path, langs=["id", "en"]).publish(post)
    record = only_record(fake)
    assert record["embed"]["$type"] == "app.bsky.embed.images"
    assert record["embed"]["images"][0]["alt"] == post.alt_text
    assert record["langs"] == ["id", "en"]


def test_unreachable_image_posts_the_card_without_thumb(fake, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        make(fake, tmp_path).publish(sample_post(image="http://127.0.0.1:9/x.png"))
    assert "thumb" not in only_record(fake)["embed"]["external"]
    assert "without it" in caplog.text


def test_record_key_is_a_tid_derived_from_the_post_key():
    keys = {record_key(f"delivery-{i}") for i in range(2000)}
    assert len(keys) == 2000
    assert all(TID.match(k) for k in keys)
    assert record_key("delivery-1") == record_key("delivery-1")


# --- never twice ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["hang", "drop"])
def test_a_retry_after_an_unanswered_post_makes_one_post(fake, tmp_path, fault):
    publisher = make(fake, tmp_path)
    post = sample_post(key="delivery-42")
    fake.script(fault)
    with pytest.raises(UncertainError):
        publisher.publish(post)
    assert fake.posts == 1
    receipt = publisher.publish(post)  # the PDS refuses the same rkey; we read it back
    assert fake.posts == 1
    assert receipt.remote_id.endswith("/" + record_key("delivery-42"))
    assert {r.json["rkey"] for r in creates(fake)} == {record_key("delivery-42")}


def test_duplicate_rkey_is_refused_by_the_fake_like_the_pds(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(key="k"))
    token = publisher._session.access  # type: ignore[union-attr]
    body = creates(fake)[0].json
    response = requests.post(f"{fake.url}/xrpc/com.atproto.repo.createRecord", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=2)
    assert response.status_code == 500 and response.json()["error"] == "InternalServerError"


def test_server_error_without_a_record_is_transient(fake, tmp_path):
    publisher = make(fake, tmp_path)
    info = publish_under_fault(publisher, fake, "server_error", TransientError)
    assert not isinstance(info.value, UncertainError)
    publisher.publish(sample_post())
    assert fake.posts == 1


def test_server_error_when_the_read_back_also_fails_is_uncertain(fake, tmp_path):
    publisher = make(fake, tmp_path)
    fake.script("server_error")
    fake.reply_next(Response(503, "down"), when=lambda r: r.path.endswith("getRecord"))
    with pytest.raises(UncertainError):
        publisher.publish(sample_post())


# --- sessions ---------------------------------------------------------------------------------


def test_session_is_created_once_and_reused(fake, tmp_path):
    publisher = make(fake, tmp_path)
    for i in range(3):
        publisher.publish(sample_post(key=f"k{i}"))
    assert fake.logins == 1 and fake.refreshes == 0


def test_expired_token_is_refreshed_and_the_post_sent_once(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(key="k1"))
    fake.expire_access_tokens()
    publisher.publish(sample_post(key="k2"))
    assert fake.posts == 2 and fake.refreshes == 1 and fake.logins == 1
    statuses = [r.path.rsplit("/", 1)[-1] for r in fake.requests]
    assert statuses.count("com.atproto.repo.createRecord") == 3  # one refused with ExpiredToken


def test_revoked_refresh_token_falls_back_to_one_login(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(key="k1"))
    fake.expire_access_tokens()
    fake.revoke_refresh_tokens()
    publisher.publish(sample_post(key="k2"))
    assert fake.posts == 2 and fake.logins == 2


def test_token_about_to_expire_is_refreshed_first(fake, tmp_path):
    later = {"now": datetime.now(UTC)}
    publisher = make(fake, tmp_path, now=lambda: later["now"])
    publisher.publish(sample_post(key="k1"))
    later["now"] += timedelta(seconds=fake.access_ttl - 30)
    publisher.publish(sample_post(key="k2"))
    assert fake.refreshes == 1 and fake.logins == 1 and fake.posts == 2
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests].count("com.atproto.repo.createRecord") == 2


def test_wrong_app_password_is_an_auth_error_naming_the_variable(tmp_path):
    with FakeBluesky(password="another-password", lifetime=30) as fake, pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post())
    message = info.value.message
    assert "BLUESKY_APP_PASSWORD" in message and "autopublish resume bluesky" in message
    assert CANARY not in f"{info.value} {vars(info.value)}"


def test_account_takedown_is_an_auth_error(fake, tmp_path):
    fake.takedown = True
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert "taken down" in info.value.message


def _epoch_in(seconds: int) -> str:
    return str(int(time.time()) + seconds)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "words"),
    [
        (429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"RateLimit-Reset": "+900"}, RateLimitedError, "slow down"),
        (400, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record: Record/langs"}, {}, PermanentError, "refused the post"),
        (401, {"error": "AuthenticationRequired", "message": "Authentication Required"}, {}, AuthError, "BLUESKY_APP_PASSWORD"),
        (403, {"error": "Forbidden", "message": "Forbidden"}, {}, AuthError, "app password"),
        (400, {"error": "AccountTakedown", "message": "Account has been taken down"}, {}, AuthError, "taken down"),
        (413, {"error": "PayloadTooLarge", "message": "request entity too large"}, {}, PermanentError, "refused the post"),
        (200, "not json", {"Content-Type": "text/plain"}, UncertainError, "may have been published"),
    ],
)
def test_error_answers_map_to_the_core_vocabulary(fake, tmp_path, status, body, headers, expected, words):
    payload = body if isinstance(body, str) else json.dumps(body)
    headers = {k: _epoch_in(int(v)) if v.startswith("+") else v for k, v in headers.items()}
    fake.reply_next(Response(status, payload, {"Content-Type": "application/json", **headers}))
    with pytest.raises(PublishError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert type(info.value) is expected
    assert words in info.value.message
    assert CANARY not in f"{info.value} {vars(info.value)}"
    if expected is RateLimitedError:
        assert 890 <= info.value.retry_after <= 905


def test_login_rate_limit_is_rate_limited(fake, tmp_path):
    fake.reply_next(
        Response.json_body(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"RateLimit-Reset": _epoch_in(300)}),
        when=lambda r: r.path.endswith("createSession"),
    )
    with pytest.raises(RateLimitedError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert info.value.retry_after > 0 and fake.posts == 0


# --- read-back and check -----------------------------------------------------------------------


def test_read_back_by_record_key(fake, tmp_path):
    publisher = make(fake, tmp_path)
    post = sample_post(key="mine")
    assert publisher.find_existing(post) is None
    publisher.publish(sample_post(key="other"))
    receipt = publisher.publish(post)
    found = publisher.find_existing(post)
    assert found == receipt
    listed = requests.get(
        f"{fake.url}/xrpc/com.atproto.repo.listRecords", params={"repo": fake.did, "collection": "app.bsky.feed.post", "limit": 1}, timeout=2
    ).json()
    assert len(listed["records"]) == 1 and "cursor" in listed


def test_check_reports_the_account(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level is HealthLevel.OK
    assert "@berita.bsky.social" in health.summary and fake.did in health.summary


# --- secrets ---------------------------------------------------------------------------------------


def test_the_app_password_never_reaches_logs_or_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(image=fake.image_url()))
    fake.expire_access_tokens()
    fake.revoke_refresh_tokens()
    for error in errors_under_faults(fake, lambda kind: publisher.publish(sample_post(key=f"k-{kind}"))):
        assert CANARY not in f"{error} {error!r} {vars(error)}"
    publisher.find_existing(sample_post())
    publisher.check()
    assert CANARY not in caplog.text
    for token in list(fake.access_tokens) + list(fake.refresh_tokens):
        assert token not in caplog.text


# --- sessions across runs (cron: `autopublish run --once`) -----------------------------------


def _session_file(tmp_path: Path) -> Path:
    return tmp_path / "sessions" / "bluesky-bluesky.json"


def test_the_fake_limits_logins_like_bluesky(fake, tmp_path):
    """30 createSession calls per 5 minutes per handle: the 31st is answered 429 (what cron runs without a saved session would meet)."""
    for i in range(30):
        make(fake, tmp_path / f"run{i}").check()
    with pytest.raises(RateLimitedError) as info:
        make(fake, tmp_path / "run30").publish(sample_post())
    assert 0 < info.value.retry_after <= 301 and fake.logins == 30 and fake.posts == 0


def test_cron_runs_reuse_one_saved_session(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    for i in range(40):  # a fresh publisher per run, as each `run --once` process builds its own
        make(fake, tmp_path).publish(sample_post(key=f"run-{i}"))
    assert fake.posts == 40 and fake.logins == 1
    saved = _session_file(tmp_path)
    assert saved.stat().st_mode & 0o777 == 0o600 and saved.parent.stat().st_mode & 0o777 == 0o700
    content = saved.read_text(encoding="utf-8")
    assert CANARY not in content  # the app password is never saved, only the session's tokens
    for token in list(fake.access_tokens) + list(fake.refresh_tokens):
        assert token not in caplog.text
    assert json.loads(content)["access"] in fake.access_tokens


def test_a_saved_session_is_refreshed_and_the_rotated_token_kept(fake, tmp_path):
    make(fake, tmp_path).publish(sample_post(key="k1"))
    for run in (2, 3):
        fake.expire_access_tokens()  # refresh tokens rotate: run 3 works only if run 2 saved the new one
        make(fake, tmp_path).publish(sample_post(key=f"k{run}"))
    assert fake.posts == 3 and fake.logins == 1 and fake.refreshes == 2


@pytest.mark.parametrize("damage", ["garbage", "other account", "revoked"])
def test_an_unusable_saved_session_means_one_new_login(fake, tmp_path, damage):
    make(fake, tmp_path).publish(sample_post(key="k1"))
    saved = _session_file(tmp_path)
    if damage == "garbage":
        saved.write_text("{not json", encoding="utf-8")
    elif damage == "other account":
        saved.write_text(json.dumps({**json.loads(saved.read_text(encoding="utf-8")), "handle": "lain.bsky.social"}), encoding="utf-8")
    else:
        fake.expire_access_tokens()
        fake.revoke_refresh_tokens()
    make(fake, tmp_path).publish(sample_post(key="k2"))
    assert fake.posts == 2 and fake.logins == 2
    assert json.loads(saved.read_text(encoding="utf-8"))["handle"] == "berita.bsky.social"


def test_run_once_from_cron_logs_in_once_across_runs(fake, tmp_path):
    """The real entry point: separate `run --once` invocations share the session saved in the state directory."""
    from tests.fakes.feed_server import FeedServer, older_items, seed_item
    from tests.helpers import outbox_lines, run_cli, write_config

    with FeedServer(older_items(2)) as site:
        (tmp_path / ".env").write_text(f"BLUESKY_APP_PASSWORD={CANARY}\n", encoding="utf-8")
        channel = f'\n[channels.sky]\nplatform = "bluesky"\nservice = "{fake.url}"\nhandle = "berita.bsky.social"\napp_password = "${{BLUESKY_APP_PASSWORD}}"\n'
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="outbox,sky", extra=channel)
        assert run_cli(config, "run", "--once").exit_code == 0  # baseline
        for n in range(3):
            site.add(seed_item(datetime.now(UTC) - timedelta(minutes=5 - n)))
            site.items[-1].guid += f"-{n}"
            site.items[-1].link += f"{n}/"
            result = run_cli(config, "run", "--once")
            assert result.exit_code == 0 and CANARY not in result.output
        assert len(outbox_lines(config)) == 3 and fake.posts == 3 and fake.logins == 1
        saved = tmp_path / "queue" / "sessions" / "bluesky-sky.json"
        assert saved.stat().st_mode & 0o777 == 0o600
        assert json.loads(saved.read_text(encoding="utf-8"))["access"] not in result.output


# --- images over the blob limits are downscaled --------------------------------------------------


def test_a_thumbnail_over_1_000_000_bytes_is_downscaled_not_dropped(fake, tmp_path):
    from tests.helpers import noise_image

    fake.images["big.png"] = (noise_image(1400, 800), "image/png")
    assert len(fake.images["big.png"][0]) > 3_000_000
    make(fake, tmp_path).publish(sample_post(image=fake.image_url("big.png")))
    thumb = only_record(fake)["embed"]["external"]["thumb"]
    blob = fake.blobs[thumb["ref"]["$link"]]
    assert len(blob) <= 1_000_000 and thumb["mimeType"] == "image/jpeg" and blob.startswith(b"\xff\xd8")


def test_an_embedded_image_over_2_000_000_bytes_is_downscaled(fake, tmp_path):
    from tests.helpers import noise_image

    fake.images["big.png"] = (noise_image(1400, 1000), "image/png")
    post = replace(sample_post(image=fake.image_url("big.png"), text="Foto kegiatan hari ini"), link=None)
    make(fake, tmp_path).publish(post)
    image = only_record(fake)["embed"]["images"][0]["image"]
    assert len(fake.blobs[image["ref"]["$link"]]) <= 2_000_000 and image["mimeType"] == "image/jpeg"


def test_two_processes_sharing_the_saved_session_do_not_log_in_again(fake, tmp_path):
    """Refresh tokens rotate: when one process refreshed, the other picks up the saved session instead of logging in."""
    daemon, cron = make(fake, tmp_path), make(fake, tmp_path)
    daemon.publish(sample_post(key="k1"))
    cron.publish(sample_post(key="k2"))
    fake.expire_access_tokens()
    daemon.publish(sample_post(key="k3"))  # refreshes: the refresh token cron holds is now spent
    cron.publish(sample_post(key="k4"))
    assert fake.posts == 4 and fake.logins == 1 and fake.refreshes == 1

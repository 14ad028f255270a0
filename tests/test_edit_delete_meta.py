"""Issue 16: Facebook edits (POST /{post-id}) and deletes (DELETE /{post-id}); Threads deletes (DELETE /{media-id})."""

from __future__ import annotations

import dataclasses

import pytest

from autopublish.errors import AuthError, PermanentError
from autopublish.models import Receipt
from tests.contract import build_publisher, sample_post
from tests.fakes.facebook import CONTRACT as FACEBOOK
from tests.fakes.threads import CONTRACT as THREADS


def test_facebook_edit_changes_the_message_of_the_page_post(tmp_path):
    with FACEBOOK.make_fake() as fake:
        publisher = build_publisher(FACEBOOK, fake, tmp_path)
        assert publisher.can_edit and publisher.can_delete
        post = sample_post(text="Judul lama")
        receipt = publisher.publish(post)
        publisher.edit(receipt, dataclasses.replace(post, text="Judul baru yang dikoreksi"))
        (stored,) = [p for p in fake.posts if p["id"] == receipt.remote_id]
        assert stored["message"] == "Judul baru yang dikoreksi"
        assert stored["history"] == ["Judul lama"]
        edits = [r for r in fake.requests if r.method == "POST" and r.path.rstrip("/").endswith(receipt.remote_id)]
        assert len(edits) == 1 and edits[0].param("message") == "Judul baru yang dikoreksi"
        assert len(fake.posts) == 1  # updated in place, nothing re-posted


def test_facebook_delete_then_delete_again_is_done(tmp_path):
    with FACEBOOK.make_fake() as fake:
        publisher = build_publisher(FACEBOOK, fake, tmp_path)
        receipt = publisher.publish(sample_post())
        publisher.delete(receipt)
        assert fake.posts == [] and len(fake.deleted_posts) == 1
        publisher.delete(receipt)  # #100/33 "does not exist": already gone
        with pytest.raises(PermanentError, match="no longer on the Facebook Page"):
            publisher.edit(receipt, sample_post())


def test_facebook_delete_without_pages_manage_posts_is_an_auth_problem(tmp_path):
    with FACEBOOK.make_fake() as fake:
        publisher = build_publisher(FACEBOOK, fake, tmp_path)
        receipt = publisher.publish(sample_post())
        fake.grant({"pages_read_engagement"})
        with pytest.raises(AuthError):
            publisher.delete(receipt)
        assert len(fake.posts) == 1


def test_threads_deletes_with_threads_delete_and_cannot_edit(tmp_path):
    with THREADS.make_fake() as fake:
        fake.grant({"threads_basic", "threads_content_publish", "threads_delete"})
        publisher = build_publisher(THREADS, fake, tmp_path)
        assert publisher.can_delete and not publisher.can_edit
        item = fake.add_media("Judul https://jakberketahanan.example.go.id/a/")
        receipt = Receipt(item["id"], item["permalink"])
        publisher.delete(receipt)
        assert fake.media == []
        publisher.delete(receipt)  # already gone
        deletes = [r for r in fake.requests if r.method == "DELETE"]
        assert len(deletes) == 2 and deletes[0].path.rstrip("/").endswith(item["id"])


def test_threads_delete_without_threads_delete_names_the_permission(tmp_path):
    with THREADS.make_fake() as fake:
        publisher = build_publisher(THREADS, fake, tmp_path)
        item = fake.add_media("Judul")
        with pytest.raises(AuthError, match="threads_delete"):
            publisher.delete(Receipt(item["id"], item["permalink"]))
        assert len(fake.media) == 1

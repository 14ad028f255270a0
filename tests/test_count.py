"""`autopublish count`: each platform's own length, the same rule the adapters fit posts with."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from autopublish.cli import cli
from autopublish.platforms import PUBLISHERS
from tests.fakes.mastodon import FakeMastodon


def _count(*args: str) -> str:
    result = CliRunner().invoke(cli, ["count", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.mark.parametrize("platform", sorted(PUBLISHERS))
def test_every_platform_counts_without_credentials(platform):
    length, _, limit = _count("--platform", platform, "Halo dunia").partition(" of ")
    assert int(length) > 0 and int(limit) > 0


def test_platform_rules_differ_where_the_platforms_do():
    text = "Keluarga 👨‍👩‍👧‍👦 https://example.go.id/berita/sangat/panjang/sekali/artikel-ini/"
    assert _count("--platform", "x", text) == "35 of 280"  # URL 23, emoji sequence 2
    assert _count("--platform", "mastodon", text) == "34 of 500"  # graphemes, URL 23
    assert _count("--platform", "telegram", text).endswith("of 4096")


def test_mastodon_instance_limits(tmp_path):
    with FakeMastodon(max_characters=1000, url_length=30) as fake:
        assert _count("--platform", "mastodon", "--instance", fake.url, "a https://example.org/x") == "32 of 1000"


def test_unknown_platform_and_misplaced_instance_are_plain_errors():
    runner = CliRunner()
    result = runner.invoke(cli, ["count", "--platform", "myspace", "hi"])
    assert result.exit_code == 1 and "Unknown platform" in result.output
    result = runner.invoke(cli, ["count", "--platform", "x", "--instance", "http://127.0.0.1:9", "hi"])
    assert result.exit_code == 1 and "Mastodon only" in result.output

"""Config: the example works as written; every broken config names the file, the key and the fix, and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopublish.config import load_config
from autopublish.errors import ConfigError
from tests.helpers import ROOT, run_cli

BASE = """
[settings]
state_dir = "queue"
poll_interval = "5m"
first_run = "skip"
max_age = "3d"

[feeds.site]
url = "http://127.0.0.1:8001/feed/"
channels = ["outbox"]

[channels.outbox]
platform = "outbox"
template = "{title}\\n\\n{summary}\\n\\n{link}\\n\\n{hashtags}"
"""


def test_the_issue_config_works_as_written(tmp_path):
    path = tmp_path / "autopublish.toml"
    path.write_text(BASE)
    config = load_config(path, {}, cwd=tmp_path)
    assert config.state_dir == (tmp_path / "queue").resolve()
    assert config.settings.poll_interval == 300 and config.settings.max_age == 3 * 86400
    assert config.feeds["site"].channels == ("outbox",)


def test_the_example_config_is_valid(tmp_path):
    config = load_config(ROOT / "config" / "autopublish.example.toml", {}, cwd=tmp_path)
    assert "outbox" in config.channels


def test_check_prints_the_resolved_state_dir(tmp_path):
    path = tmp_path / "autopublish.toml"
    path.write_text(BASE)
    result = run_cli(path, "check", "--offline")
    assert result.exit_code == 0, result.output
    assert "State directory:" in result.output and str(Path.cwd() / "queue") in result.output


BROKEN = [
    ("unknown platform", BASE.replace('platform = "outbox"', 'platform = "myspace"'), "channels.outbox.platform", "unknown platform"),
    ("misspelt platform", BASE.replace('platform = "outbox"', 'platform = "outbx"'), "channels.outbox.platform", 'did you mean "outbox"'),
    ("missing secret", BASE + '\n[web]\nsecret_key = "${NOPE_NOT_SET}"\n', "web.secret_key", "NOPE_NOT_SET is not set"),
    ("bad template field", BASE.replace("{hashtags}", "{hashtag}"), "channels.outbox.template", "unknown placeholder {hashtag}"),
    ("attribute access", BASE.replace("{hashtags}", "{title.__class__}"), "channels.outbox.template", "not allowed"),
    ("duplicate names", BASE + '\n[channels.outbox]\nplatform = "outbox"\n', "(syntax)", "not valid TOML"),
    ("wrong type", BASE.replace('poll_interval = "5m"', 'poll_interval = "often"'), "settings.poll_interval", "not a duration"),
    ("unknown key", BASE.replace('first_run = "skip"', 'first_run = "skip"\npoll_intervall = "5m"'), "settings.poll_intervall", 'did you mean "poll_interval"'),
    ("unknown channel", BASE.replace('channels = ["outbox"]', 'channels = ["outbox", "facebok"]'), "feeds.site.channels[1]", 'no channel is named "facebok"'),
    ("bad first_run", BASE.replace('first_run = "skip"', 'first_run = "newest"'), "settings.first_run", "latest:N"),
    ("bad url", BASE.replace("http://127.0.0.1:8001/feed/", "127.0.0.1/feed"), "feeds.site.url", "http(s) address"),
]


@pytest.mark.parametrize(("name", "text", "key", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_configs_name_file_key_and_fix_and_exit_2(tmp_path, name, text, key, words):
    path = tmp_path / "autopublish.toml"
    path.write_text(text)
    result = run_cli(path, "check", "--offline")
    assert result.exit_code == 2, result.output
    message = result.output
    assert str(path) in message and key in message and words in message
    assert "Traceback" not in message


def test_every_problem_is_reported_at_once(tmp_path):
    text = (
        BASE.replace('poll_interval = "5m"', 'poll_interval = "often"').replace("{hashtags}", "{nope}").replace('channels = ["outbox"]', 'channels = ["ghost"]')
    )
    path = tmp_path / "autopublish.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, cwd=tmp_path)
    keys = {p.key for p in info.value.problems}
    assert {"settings.poll_interval", "channels.outbox.template", "feeds.site.channels[0]"} <= keys


def test_a_secret_written_in_the_file_is_refused(tmp_path):
    pytest.importorskip("autopublish.platforms.webhook")
    path = tmp_path / "autopublish.toml"
    path.write_text(BASE + '\n[channels.hook]\nplatform = "webhook"\nurl = "https://example.org/h"\nsecret = "plain-text-secret"\n')
    result = run_cli(path, "check", "--offline")
    assert result.exit_code == 2
    assert "channels.hook.secret" in result.output and "${NAME}" in result.output
    assert "plain-text-secret" not in result.output


def test_missing_config_file_says_what_to_do(tmp_path):
    result = run_cli(tmp_path / "nope.toml", "check", "--offline")
    assert result.exit_code == 2
    assert "does not exist" in result.output and "autopublish.example.toml" in result.output

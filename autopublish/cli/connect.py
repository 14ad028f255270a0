"""``connect``: get platform credentials step by step and write them to .env."""

from __future__ import annotations

import click

from autopublish.platforms.meta.connect import facebook_command


@click.group("connect")
def connect_group() -> None:
    """Get platform credentials step by step and write them to .env."""


connect_group.add_command(facebook_command)

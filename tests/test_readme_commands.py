"""The README's command table and the CLI agree: every command is documented, every documented one exists."""

from __future__ import annotations

import re
from pathlib import Path

import click

from autopublish.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def cli_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every runnable command by its path (a group counts through its subcommands), hidden ones left out."""
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            found.update(cli_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


def readme_commands(known: dict[tuple[str, ...], click.Command]) -> dict[tuple[str, ...], set[str]]:
    """Command paths in the README's table, each with the options written beside it."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| command | what it does |")
    documented: dict[tuple[str, ...], set[str]] = {}
    last: tuple[str, ...] | None = None
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first_cell = line.split(" | ")[0]
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.removeprefix("autopublish ").split()
            if words[0].startswith("-"):
                assert last is not None, f"an option before any command in: {line}"
            else:
                path = next((tuple(words[:n]) for n in (2, 1) if tuple(words[:n]) in known), (words[0],))
                last = path
                documented.setdefault(path, set())
            documented[last].update(re.findall(r"--[a-z][a-z-]*", span))
    return documented


def test_the_readme_command_table_matches_the_cli():
    known = cli_commands(cli)
    documented = readme_commands(known)
    assert len(known) >= 10
    missing = sorted(" ".join(p) for p in set(known) - set(documented))
    unknown = sorted(" ".join(p) for p in set(documented) - set(known))
    assert not missing, f"commands the README's table does not list: {missing}"
    assert not unknown, f"commands the README's table lists that the CLI does not have: {unknown}"
    for path, options in documented.items():
        real = {opt for param in known[path].params for opt in getattr(param, "opts", []) if opt.startswith("--")}
        assert options <= real, f"autopublish {' '.join(path)}: the README names options it does not have: {sorted(options - real)}"

"""Every command explains itself, and the README documents every command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ar_sync.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            found.extend(commands(cmd, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize("name,cmd", commands(cli), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_and_is_in_the_readme(name: str, cmd: click.Command) -> None:
    assert cmd.help and len(cmd.help.strip()) > 15, f"`ar-sync {name}` needs a help text"
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert max(map(len, result.output.splitlines())) <= 100
    top = name.split()[0]
    assert f"ar-sync {top}" in README or f"$C {top}" in README, f"README lacks `{name}`"


def test_read_commands_take_json() -> None:
    for name in ("status", "failures", "show"):
        assert any(p.name == "as_json" for p in cli.commands[name].params), name

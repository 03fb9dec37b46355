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


READ_COMMANDS = ("status", "failures", "show", "check", "config check", "audit verify",
                 "netsuite ping", "state prune")


def test_read_commands_take_json() -> None:
    found = dict(commands(cli))
    for name in READ_COMMANDS:
        assert any(p.name == "as_json" for p in found[name].params), name


def test_config_check_and_audit_verify_in_json(tmp_path: Path) -> None:
    """For scripts and chat-ops: the answer and the exit code, problems named by key."""
    import json

    from click.testing import CliRunner

    from ar_sync.demo import write_demo_dir

    config = write_demo_dir(tmp_path / "demo")
    runner = CliRunner()
    ok = runner.invoke(cli, ["--config", str(config), "config", "check", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    config.write_text(config.read_text().replace('timezone = "America/New_York"',
                                                 'timezone = "Mars/Olympus"'))
    bad = runner.invoke(cli, ["--config", str(config), "config", "check", "--json"])
    assert bad.exit_code == 2
    [problem] = json.loads(bad.output)["problems"]
    assert problem["key"] == "billing.timezone" and "Mars/Olympus" in problem["message"]
    config.write_text(config.read_text().replace("Mars/Olympus", "America/New_York"))
    assert runner.invoke(cli, ["--config", str(config), "run", "--once"]).exit_code == 0
    verified = runner.invoke(cli, ["--config", str(config), "audit", "verify", "--json"])
    data = json.loads(verified.output)
    assert verified.exit_code == 0 and data["ok"] and data["events"] > 95

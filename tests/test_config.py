"""Configuration: the example loads, and every problem is reported at once with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import find_config, load_settings
from ar_sync.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str, library: str = "") -> Path:
    (tmp_path / "customers.toml").write_text(library)
    path = tmp_path / "ar-sync.toml"
    path.write_text(text)
    return path


BASE = """
[requirements]
library = "customers.toml"
[delivery]
default_channel = "email"
[channels.email]
connector = "outbox"
directory = "out"
"""


def test_the_annotated_example_config_loads(tmp_path: Path) -> None:
    settings = load_settings(REPO / "config" / "ar-sync.example.toml")
    assert settings.netsuite.api == "sandbox"
    assert set(settings.model.channels) == {"email", "coupa", "ariba", "peppol"}
    assert settings.requirements, "the example customer library is loaded"
    assert settings.state_path == (REPO / "config" / "../state/ar-sync.db")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, BASE))
    assert settings.channel_settings("email")["directory"] == tmp_path / "out"
    assert settings.state_path == tmp_path / "ar-sync.db"


def test_every_problem_is_reported_at_once_naming_file_and_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET_VAR", raising=False)
    path = _write(tmp_path, BASE.replace('default_channel = "email"',
                                         'default_channel = "fax"') + """
[netsuite]
api = "sandbox"
timeout_seconds = "soon"
colour = "blue"
[netsuite.rest]
base_url = "not a url"
[billing]
timezone = "Mars/Olympus"
[channels.coupa]
connector = "coupa-cxml"
shared_secret_env = "NO_SUCH_SECRET_VAR"
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {key: msg for file, key, msg in info.value.problems}
    assert all(file == str(path) for file, _, _ in info.value.problems)
    assert problems["netsuite.timeout_seconds"].startswith("Input should be a valid number")
    assert problems["netsuite.colour"] == "unknown key"
    assert "URL" in problems["netsuite.rest.base_url"]
    assert "Mars/Olympus" in problems["billing.timezone"]
    assert "NO_SUCH_SECRET_VAR is not set" in problems["channels.coupa.shared_secret_env"]
    # once the schema is right, the cross-checks are reported together too
    path = _write(tmp_path, BASE.replace('default_channel = "email"',
                                         'default_channel = "fax"') + """
[channels.coupa]
connector = "coupa-cxml"
shared_secret_env = "NO_SUCH_SECRET_VAR"
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {key: msg for _, key, msg in info.value.problems}
    assert "NO_SUCH_SECRET_VAR is not set" in problems["channels.coupa.shared_secret_env"]
    assert "'fax' is not defined" in problems["delivery.default_channel"]
    assert "unknown connector 'coupa-cxml'" in problems["channels.coupa.connector"]


def test_requirements_library_is_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE, library="""
[customers."CUST-1"]
channel = "pigeon"
po_pattern = "(unclosed"
[customers."CUST-2"]
po_requried = true
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {(Path(f).name, k): m for f, k, m in info.value.problems}
    assert "regular expression" in problems[("customers.toml", "customers.CUST-1.po_pattern")]
    assert problems[("customers.toml", "customers.CUST-2.po_requried")] == "unknown key"


def test_missing_config_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found.*ar-sync demo"):
        load_settings(tmp_path / "nope.toml")


def test_config_is_found_by_flag_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AR_SYNC_CONFIG", "/etc/ar-sync/env.toml")
    assert find_config("/x/flag.toml") == Path("/x/flag.toml")
    assert find_config(None) == Path("/etc/ar-sync/env.toml")
    monkeypatch.delenv("AR_SYNC_CONFIG")
    assert find_config(None) == Path("config/ar-sync.toml")


def test_config_check_exits_2_on_error_and_0_when_valid(tmp_path: Path) -> None:
    good = _write(tmp_path, BASE)
    result = CliRunner().invoke(cli, ["--config", str(good), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "\n[state]\npath = 3\n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "config", "check"])
    assert result.exit_code == 2
    assert f"{bad}: state.path: Input should be a valid string" in result.output


def test_secrets_come_from_the_environment_and_never_show(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AR_SYNC_TEST_SECRET", "s3cr3t-value-123")
    path = _write(tmp_path, BASE + 'token_env = "AR_SYNC_TEST_SECRET"\n')
    with pytest.raises(ConfigError) as info:  # the outbox takes no token: reported by key
        load_settings(path)
    assert ("channels.email.token", "unknown key") in [(k, m) for _, k, m in info.value.problems]
    assert "s3cr3t-value-123" not in str(info.value)
    settings = load_settings(path, check_connectors=False)
    secret = settings.channel_settings("email")["token"]
    assert secret.get_secret_value() == "s3cr3t-value-123"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(settings.secrets)

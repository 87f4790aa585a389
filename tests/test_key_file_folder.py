"""A --key-file in a folder that does not exist is refused: a mistyped path must not start a new key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medmm.errors import ConfigError
from medmm.pseudonym import KEY_ENV, load_key


def test_a_given_key_path_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "site.key"
    with pytest.raises(ConfigError, match="does not exist"):
        load_key(path)
    assert not path.parent.exists()


def test_the_environment_path_is_checked_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "typo" / "site.key"))
    with pytest.raises(ConfigError, match="--key-file"):
        load_key()
    assert not (tmp_path / "typo").exists()


def test_a_new_key_is_still_created_in_an_existing_folder(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    key = load_key(path)
    assert len(key) == 32 and load_key(path) == key
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_default_location_creates_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert len(load_key()) == 32
    assert (tmp_path / "config" / "medmm" / "site.key").exists()


def test_the_cli_prints_an_error_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medmm.cli import app

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r1.txt").write_text("No acute findings.")
    result = CliRunner().invoke(
        app,
        [
            "reports",
            "parse",
            str(tmp_path / "reports"),
            "--out",
            str(tmp_path / "run"),
            "--key-file",
            str(tmp_path / "nope" / "site.key"),
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output and "Traceback" not in result.output

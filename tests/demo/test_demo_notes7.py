"""`medmm demo` prints the fused model's training notes (e.g. why the last epoch is kept)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app


def test_demo_prints_the_training_notes(
    tmp_path: Path, key_file: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import medmm.models.runner as runner

    real = runner.train_from_config
    returned: list[list[str]] = []
    # the demo's sample data trains without a note today; one the trainer gives on other data is added
    extra = "the validation split has no known label for task 'diagnosis'; the last epoch is kept"

    def with_a_note(*args: object, **kwargs: object) -> dict[str, object]:
        summary = real(*args, **kwargs)  # type: ignore[arg-type]
        summary["notes"] = [*summary.get("notes", []), extra]
        returned.append(list(summary["notes"]))
        return summary

    monkeypatch.setattr(runner, "train_from_config", with_a_note)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len(returned) == 1
    printed = result.output + capfd.readouterr().err
    for note in returned[0]:
        assert f"note: fused model: {note}" in printed
    assert printed.count("note: fused model: ") == len(returned[0])  # one line each

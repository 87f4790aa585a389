"""`medmm run` on a nightly schedule: a missing input or model is an error naming the stage, never a
traceback or a silent empty success."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.workflows.config import WorkflowConfig
from medmm.workflows.run import run_workflow


def _workflow(tmp_path: Path, stages: str) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(f"name: nightly\nrun_dir: run\nkey_file: site.key\nstrict: true\nstages:\n{stages}")
    return path


def test_missing_signals_folder_fails_with_exit_2(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "  - stage: signals\n    input: ecg-export-not-mounted\n")
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2, res.output
    assert "stage 'signals'" in res.output and "ecg-export-not-mounted" in res.output
    assert "existing folder" in res.output
    assert not (tmp_path / "run" / "manifest_signals.parquet").exists()


def test_missing_anomaly_model_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "  - stage: anomaly\n    options:\n      model: models/none\n")
    (tmp_path / "run").mkdir()
    res = CliRunner().invoke(app, ["run", str(wf)])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "stage 'anomaly'" in res.output and "models/none" in res.output and "Fix:" in res.output


def test_workers_below_one_is_refused(tmp_path: Path) -> None:
    wf = _workflow(tmp_path, "  - stage: signals\n    input: ecg\n")
    res = CliRunner().invoke(app, ["run", str(wf), "--workers", "-1"])  # as the file's schema: >= 1
    assert res.exit_code == 2 and "--workers" in res.output


@pytest.mark.parametrize(
    ("stage", "options"),
    [("ingest", {"workers": 2}), ("reports", {"key_file": "k"}), ("ingest", {"run_dir": "elsewhere"})],
)
def test_option_set_by_the_workflow_itself(tmp_path: Path, stage: str, options: dict[str, object]) -> None:
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": "r", "stages": [{"stage": stage, "input": "a", "options": options}]}
    )
    with pytest.raises(ConfigError, match="come from the workflow file itself"):  # was a TypeError traceback
        run_workflow(cfg, tmp_path)


def test_home_relative_key_file_and_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medmm.workflows.run as run_module

    home = tmp_path / "home"
    (home / ".config" / "medmm").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    seen: dict[str, Path] = {}

    def spy(step: object, ctx: run_module.StageContext) -> dict[str, int]:
        seen.update(run_dir=ctx.run_dir, key_file=ctx.key_file or Path())
        return {}

    monkeypatch.setitem(run_module._STAGES, run_module.StageName.align, spy)
    cfg = WorkflowConfig.model_validate(
        {
            "name": "x",
            "run_dir": "~/runs/n",
            "key_file": "~/.config/medmm/site.key",
            "stages": [{"stage": "align"}],
        }
    )
    run_workflow(cfg, tmp_path / "workflows")
    assert (
        seen["key_file"] == home / ".config" / "medmm" / "site.key"
    )  # was workflows/~/.config/...: a new key
    assert seen["run_dir"] == home / "runs" / "n"

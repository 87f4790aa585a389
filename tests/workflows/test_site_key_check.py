"""One site key per run directory: run.json's ``key_check``; stages with another key are refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import key_check_value, load_key
from medmm.runinfo import claim_site_key, read_run_json, update_run_json
from medmm.signals.pipeline import run_signals
from medmm.workflows.config import StageName, StageStep, WorkflowConfig
from medmm.workflows.run import StageContext, run_workflow

VITALS = "time,HR\n2020-01-01 10:00:00,80\n2020-01-01 10:00:05,81\n"


def _key(tmp_path: Path, name: str, byte: str) -> Path:
    path = tmp_path / name
    path.write_text(byte * 32 + "\n")
    return path


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    archive, signals = tmp_path / "archive", tmp_path / "signals"
    archive.mkdir()
    (archive / "notes.txt").write_text("not an image\n")
    signals.mkdir()
    (signals / "v.csv").write_text(VITALS)
    return archive, signals


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())  # rich may wrap the message in a box


def test_new_key_is_logged_without_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "typo-site.key"  # in an existing folder (a missing one is refused)
    with caplog.at_level(logging.WARNING, logger="medmm.pseudonym"):
        key = load_key(path)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    message = warned[0].getMessage()
    assert str(path) in message and "NEW site key" in message and "differs" in message
    assert key.hex() not in caplog.text and key_check_value(key) not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medmm.pseudonym"):
        assert load_key(path) == key  # an existing key: no warning
    assert not caplog.records


def test_check_value_is_not_the_key() -> None:
    key = bytes.fromhex("ab" * 32)
    check = key_check_value(key)
    assert len(check) == 16 and check not in key.hex()
    assert check != key_check_value(bytes.fromhex("cd" * 32))


def test_ingest_then_signals_with_another_key_is_refused(tmp_path: Path) -> None:
    archive, signals = _inputs(tmp_path)
    k1, k2 = _key(tmp_path, "k1", "ab"), _key(tmp_path, "k2", "cd")
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=1, processes=False, key_file=k1, show_progress=False)
    assert read_run_json(run)["key_check"] == key_check_value(load_key(k1))
    args = ["signals", "ingest", str(signals), "--out", str(run), "--workers", "0", "--key-file", str(k2)]
    res = CliRunner().invoke(app, args)
    text = _flat(res.output)
    assert res.exit_code == 2, res.output
    assert text.startswith("error:") and str(run) in text and "different site key" in text
    assert "same --key-file" in text and "new --out" in text and "Traceback" not in res.output
    assert not (run / "vitals.parquet").exists()  # nothing written with the other key
    assert read_run_json(run)["key_check"] == key_check_value(load_key(k1))
    # the same key is accepted, and the field survives the stage's own run.json section
    res = CliRunner().invoke(app, [*args[:-1], str(k1)])
    assert res.exit_code == 0, res.output
    data = read_run_json(run)
    assert data["key_check"] == key_check_value(load_key(k1)) and {"ingest", "signals"} <= set(data["stages"])


def test_ingest_again_with_a_mistyped_key_path_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive, _ = _inputs(tmp_path)
    k1 = _key(tmp_path, "k1", "ab")
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=1, processes=False, key_file=k1, show_progress=False)
    manifest = (run / "manifest.parquet").read_bytes()
    typo = tmp_path / "kl"
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError, match="different site key") as err:
        ingest_archive(archive, run, workers=1, processes=False, key_file=typo, show_progress=False)
    assert str(run) in str(err.value)
    assert typo.exists() and str(typo) in caplog.text  # the new key was made, and said so
    assert (run / "manifest.parquet").read_bytes() == manifest  # the earlier run is untouched


def test_signals_then_ingest_with_another_key_is_refused(tmp_path: Path) -> None:
    archive, signals = _inputs(tmp_path)
    k1, k2 = _key(tmp_path, "k1", "ab"), _key(tmp_path, "k2", "cd")
    run = tmp_path / "run"
    run_signals(signals, run, workers=0, key_file=k1)
    with pytest.raises(ConfigError, match="different site key"):
        ingest_archive(archive, run, workers=1, processes=False, key_file=k2, show_progress=False)
    assert not (run / "manifest.parquet").exists()


def test_old_run_dir_gets_the_field(tmp_path: Path) -> None:
    _, signals = _inputs(tmp_path)
    k2 = _key(tmp_path, "k2", "cd")
    run = tmp_path / "run"
    update_run_json(run, "ingest", options={}, counts={"ingested": 1}, timings={})  # made before key_check
    assert "key_check" not in read_run_json(run)
    run_signals(signals, run, workers=0, key_file=k2)
    data = json.loads((run / "run.json").read_text())
    assert data["key_check"] == key_check_value(load_key(k2)) and "ingest" in data["stages"]


def test_claim_without_record_only_checks(tmp_path: Path) -> None:
    run = tmp_path / "run"
    claim_site_key(run, "0" * 16, record=False)
    assert not (run / "run.json").exists()
    claim_site_key(run, "0" * 16)
    with pytest.raises(ConfigError, match="different site key"):
        claim_site_key(run, "1" * 16, record=False)


def test_workflow_refuses_before_any_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = _inputs(tmp_path)
    k1, k2 = _key(tmp_path, "k1", "ab"), _key(tmp_path, "k2", "cd")
    run = tmp_path / "run"
    claim_site_key(run, key_check_value(load_key(k1)))
    ran: list[str] = []

    def fake(step: StageStep, ctx: StageContext) -> dict[str, int]:  # the check alone, no real stage
        ran.append(step.stage.value)
        return {}

    monkeypatch.setattr("medmm.workflows.run._STAGES", dict.fromkeys(StageName, fake))
    stages = [{"stage": "align"}, {"stage": "ingest", "input": str(archive)}]
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": str(run), "key_file": str(k2), "stages": stages}
    )
    with pytest.raises(ConfigError, match="different site key"):
        run_workflow(cfg, tmp_path)
    assert ran == []  # not even the align before the keyed stage
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": str(run), "key_file": str(k1), "stages": stages}
    )
    run_workflow(cfg, tmp_path)
    assert ran == ["align", "ingest"]
    # reports that keep their ids as given and have no patient/study columns use no key: no check
    keyless = [{"stage": "reports", "input": "r.csv", "options": {"keep_report_ids": True}}]
    cfg = WorkflowConfig.model_validate(
        {"name": "x", "run_dir": str(run), "key_file": str(k2), "stages": keyless}
    )
    run_workflow(cfg, tmp_path)
    for options in ({"patient_column": "patient"}, {}):  # ids pseudonymized by default: keyed
        keyed = [{"stage": "reports", "input": "r.csv", "options": options}]
        cfg = WorkflowConfig.model_validate(
            {"name": "x", "run_dir": str(run), "key_file": str(k2), "stages": keyed}
        )
        with pytest.raises(ConfigError, match="different site key"):
            run_workflow(cfg, tmp_path)

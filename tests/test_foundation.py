"""Shared foundation: pseudonyms, atomic tables, run.json, CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError, InputError, reason_of
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.records import ManifestRow, Status
from medmm.runinfo import read_run_json, update_run_json
from medmm.tables import read_table, write_table


def test_key_created_private_and_stable(tmp_path: Path) -> None:
    key_path = tmp_path / "site.key"
    key = load_key(key_path)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert load_key(key_path) == key and len(key) == 32


def test_bad_key_says_how_to_fix(tmp_path: Path) -> None:
    key_path = tmp_path / "site.key"
    key_path.write_text("not hex")
    with pytest.raises(ConfigError, match="64 hex"):
        load_key(key_path)


def test_pseudonyms_keyed_and_kind_separated() -> None:
    a, b = Pseudonymizer(b"a" * 32), Pseudonymizer(b"b" * 32)
    assert a.id("PAT1") == a.id(" PAT1 ")
    assert a.id("PAT1") != b.id("PAT1")
    assert a.id("X", "patient") != a.id("X", "study").replace("stu", "pat")
    assert "PAT1" not in a.id("PAT1")
    assert a.date_shift_days("PAT1") == a.date_shift_days("PAT1")


def test_write_table_is_atomic_and_typed(tmp_path: Path) -> None:
    rows = [ManifestRow(path="x/y.dcm", size=3, format="dicom", status=Status.quarantined, reason="E: r")]
    path = write_table(rows, tmp_path / "manifest.parquet", ManifestRow)
    frame = read_table(path)
    assert list(frame.columns) == list(ManifestRow.model_fields)
    assert frame.loc[0, "status"] == "quarantined"
    assert not list(tmp_path.glob(".*tmp"))
    empty = read_table(write_table([], tmp_path / "empty.parquet", ManifestRow))
    assert list(empty.columns) == list(ManifestRow.model_fields) and len(empty) == 0


def test_run_json_keeps_other_stages(tmp_path: Path) -> None:
    update_run_json(tmp_path, "ingest", options={}, counts={"ingested": 1}, timings={"total_s": 1})
    update_run_json(tmp_path, "reports", options={}, counts={"ingested": 2}, timings={"total_s": 1})
    data = read_run_json(tmp_path)
    assert set(data["stages"]) == {"ingest", "reports"}
    assert data["versions"]["pydantic"] != "absent"


def test_input_error_pickles_and_reads_well() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(InputError("p.dcm", "truncated", "re-send")))
    assert reason_of(err) == "InputError: p.dcm: truncated. Fix: re-send"


def test_cli_help_lists_version() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "version" in result.output


def test_atomic_write_json_non_finite_floats_are_null(tmp_path: Path) -> None:
    """JSON has no NaN/Infinity: they are written as null (jq, browsers and json.loads(strict) read it)."""
    import json

    import numpy as np

    from medmm.tables import atomic_write_json

    path = atomic_write_json(
        tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": (np.float64("-inf"), 2)}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": [None, 2]}

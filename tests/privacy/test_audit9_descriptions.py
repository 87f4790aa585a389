"""``medmm ingest --keep-descriptions``: the opt-in that writes SeriesDescription / ProtocolName (operator
free text, left out by default since the privacy audit's R1) into the volume sidecars."""

from __future__ import annotations

import json
from pathlib import Path

from privacy_archive import SERIES_DESCRIPTION, write_dicom_series
from typer.testing import CliRunner

from medmm.cli import app
from medmm.ingest.pipeline import ingest_archive


def _sidecar(run: Path) -> dict[str, object]:
    (path,) = (run / "volumes").glob("*.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_keep_descriptions_writes_them_and_share_leaves_them_out(tmp_path: Path) -> None:
    from medmm.share import share_run

    archive, run, key = tmp_path / "archive", tmp_path / "run", tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    write_dicom_series(archive / "P1" / "CT", 3, 0, SERIES_DESCRIPTION)
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, keep_descriptions=True)
    kept = _sidecar(run)
    assert kept["series_description"] == kept["protocol_name"] == SERIES_DESCRIPTION
    options = json.loads((run / "run.json").read_text())["stages"]["ingest"]["options"]
    assert options["keep_descriptions"] is True
    share_run(run, tmp_path / "share", key_file=key, with_volumes=True)
    (shared,) = (tmp_path / "share" / "volumes").glob("*.json")
    assert "Smith" not in shared.read_text() and "series_description" not in shared.read_text()
    # the same run directory without the option starts afresh: no sidecar keeps the descriptions
    again = ingest_archive(archive, run, workers=1, processes=False, key_file=key)
    assert again.n_skipped == 0 and "series_description" not in _sidecar(run)


def test_cli_option(tmp_path: Path) -> None:
    archive, run, key = tmp_path / "archive", tmp_path / "run", tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    write_dicom_series(archive / "P1" / "MR", 3, 0, "AX FLAIR")
    args = ["ingest", str(archive), "--out", str(run), "--key-file", str(key), "--workers", "1"]
    res = CliRunner().invoke(app, [*args, "--keep-descriptions"])
    assert res.exit_code == 0, res.output
    assert _sidecar(run)["series_description"] == "AX FLAIR"

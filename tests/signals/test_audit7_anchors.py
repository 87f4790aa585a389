"""Session 7 audit: an anchor table with hospital ids instead of pseudonyms is refused, unechoed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medmm.cli import app


def test_hospital_id_in_anchor_table(tmp_path: Path) -> None:
    root = tmp_path / "ecg"
    root.mkdir()
    (root / "v.csv").write_text("time,HR [bpm]\n0,70\n1,71\n")
    (tmp_path / "k").write_text("ab" * 32 + "\n")
    anchors = tmp_path / "anchors.csv"
    anchors.write_text("label,patient_id,time\nct,MRN-4711234,2180-07-23T10:00:00\n")
    args = ["signals", "ingest", str(root), "--workers", "0", "--key-file", str(tmp_path / "k")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run"), "--anchors", str(anchors)])
    out = " ".join(res.output.split())
    # was: accepted; matched no record (no anchored window, no warning) and the MRN was written to run.json
    assert res.exit_code == 2 and "line 2: patient_id is not a medmm pseudonym" in out
    assert "4711234" not in out
    assert not (tmp_path / "run" / "run.json").exists()

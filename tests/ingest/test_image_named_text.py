"""A file named like an image that holds text (an error page saved under a scan's name) is quarantined,
so --strict notices the missing scan; a text file with a text name stays non_image."""

from __future__ import annotations

from pathlib import Path

from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table


def test_text_under_an_image_name(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "scan.nii.gz").write_text("<html>502 Bad Gateway</html>\n")
    (root / "IM0001.DCM").write_text("transfer failed\n")
    (root / "notes.txt").write_text("requisition forms are elsewhere\n")
    result = ingest_archive(root, tmp_path / "run", workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(tmp_path / "run" / "manifest.parquet").set_index("path")
    assert m.loc["notes.txt", "status"] == "non_image"
    for rel, kind in (("scan.nii.gz", "NIfTI"), ("IM0001.DCM", "DICOM")):
        assert m.loc[rel, "status"] == "quarantined"  # was non_image: "text file: not an imaging input"
        assert f"named like a {kind} image but holds a text file" in m.loc[rel, "reason"]
    assert result.n_quarantined == 2

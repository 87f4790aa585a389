"""Leaks found by the privacy audit in files other helpers own (docs: /work/notes/s9/privacy_findings.md).

Each test was the reproduction, marked ``xfail(strict=True)`` until its leak was fixed; now each is
the fix's regression test (R1 sidecar free text, R2 malformed DS value, R3 Modality, R4 share of a
``CT`` folder, R9 BurnedInAnnotation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from privacy_archive import SERIES_DESCRIPTION, identity_forms, write_dicom_series

from medmm.ingest.pipeline import ingest_archive


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    return key


def _series(folder: Path, description: str) -> None:
    write_dicom_series(folder, 3, 0, description)


def _leaks(text: str, *values: str) -> list[str]:
    low = text.lower()
    return [f for v in values for f in identity_forms(v) if f.lower() in low]


def test_series_description_not_in_sidecar(tmp_path: Path) -> None:
    """R1 (fixed): SeriesDescription / ProtocolName (operator free text) are not written to sidecars."""
    _series(tmp_path / "archive" / "P1" / "chest", SERIES_DESCRIPTION)
    ingest_archive(
        tmp_path / "archive", tmp_path / "run", workers=1, processes=False, key_file=_key(tmp_path)
    )
    (sidecar,) = (tmp_path / "run" / "volumes").glob("*.json")
    assert _leaks(sidecar.read_text(), "John Smith", "MRN4471923") == []
    side = json.loads(sidecar.read_text())
    assert side["modality"] == "CT" and "series_description" not in side and "protocol_name" not in side


def test_malformed_ds_value_not_quoted(tmp_path: Path) -> None:
    """R2 (fixed): a malformed DS value is not quoted in the quarantine reason."""
    import pydicom
    import pydicom.data
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    archive = tmp_path / "archive"
    archive.mkdir()
    ds = pydicom.dcmread(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    tag = Tag(0x00180050)  # SliceThickness, written raw: pydicom refuses the value when set
    ds._dict[tag] = RawDataElement(tag, "DS", 10, b"MRN4471923", 0, True, True)
    ds.save_as(archive / "thick.dcm")
    ingest_archive(archive, tmp_path / "run", workers=1, processes=False, key_file=_key(tmp_path))
    reason = pd.read_parquet(tmp_path / "run" / "manifest.parquet")["reason"].iloc[0]
    assert "SliceThickness" in reason and "MRN4471923" not in reason


def test_share_with_volumes_of_a_ct_folder(tmp_path: Path) -> None:
    """R4 (fixed): the sidecar's ``modality: CT`` equals the archive folder ``CT``: no longer refused."""
    from medmm.share import share_run

    _series(tmp_path / "archive" / "P1" / "CT", "CHEST")
    key = _key(tmp_path)
    ingest_archive(tmp_path / "archive", tmp_path / "run", workers=1, processes=False, key_file=key)
    report = share_run(tmp_path / "run", tmp_path / "share", key_file=key, with_volumes=True)
    assert report["files"]["volumes"] == 1
    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "share" / "volumes").glob("*.json")]
    assert sidecars and sidecars[0]["modality"] == "CT"


def test_share_drops_free_text_of_old_sidecars(tmp_path: Path) -> None:
    """R1/R4: a run ingested before SeriesDescription was left out has it in its sidecars; the share
    leaves it (and ProtocolName) out, and still checks the other keys for source names."""
    from medmm.share import share_run

    _series(tmp_path / "archive" / "P1" / "Smithers_MRN5550009", "CHEST")
    key = _key(tmp_path)
    run = tmp_path / "run"
    ingest_archive(tmp_path / "archive", run, workers=1, processes=False, key_file=key)
    (sidecar,) = (run / "volumes").glob("*.json")
    old = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**old, "series_description": SERIES_DESCRIPTION, "protocol_name": "X"}))
    share_run(run, tmp_path / "share", key_file=key, with_volumes=True)
    (shared,) = (tmp_path / "share" / "volumes").glob("*.json")
    text = shared.read_text()
    assert _leaks(text, "John Smith", "MRN4471923") == [] and "protocol_name" not in text
    assert json.loads(text)["modality"] == "CT"
    # a source name in a key that is no vocabulary is still replaced
    sidecar.write_text(json.dumps({**old, "body_part": "Smithers_MRN5550009"}))
    share_run(run, tmp_path / "share2", key_file=key, with_volumes=True)
    (shared,) = (tmp_path / "share2" / "volumes").glob("*.json")
    assert "Smithers" not in shared.read_text() and "MRN5550009" not in shared.read_text()


def test_modality_holding_a_name_is_not_copied(tmp_path: Path) -> None:
    """R3 (fixed): a Modality element holding a name is left empty, with a warning, everywhere."""
    import pydicom

    folder = tmp_path / "archive" / "P1" / "chest"
    _series(folder, "CHEST")
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.Modality = "Smith^John"
        ds.save_as(path)
    ingest_archive(
        tmp_path / "archive", tmp_path / "run", workers=1, processes=False, key_file=_key(tmp_path)
    )
    run = tmp_path / "run"
    manifest, volumes = pd.read_parquet(run / "manifest.parquet"), pd.read_parquet(run / "volumes.parquet")
    (sidecar,) = (run / "volumes").glob("*.json")
    assert len(volumes) == 1 and set(manifest["status"]) == {"ingested"}
    assert "smith" not in (manifest.to_csv() + volumes.to_csv() + sidecar.read_text()).lower()
    assert volumes["modality"].iloc[0] == ""
    assert any("Modality (0008,0060) is not a DICOM code string" in w for w in volumes["warnings"].iloc[0])


def test_burned_in_annotation_warns(tmp_path: Path) -> None:
    """R9 (fixed): BurnedInAnnotation YES (set by the archive's DICOM) becomes a volume warning."""
    _series(tmp_path / "archive" / "P1" / "chest", "CHEST")
    ingest_archive(
        tmp_path / "archive", tmp_path / "run", workers=1, processes=False, key_file=_key(tmp_path)
    )
    volumes = pd.read_parquet(tmp_path / "run" / "volumes.parquet")
    (sidecar,) = (tmp_path / "run" / "volumes").glob("*.json")
    (warning,) = [w for w in volumes["warnings"].iloc[0] if w.startswith("BurnedInAnnotation YES")]
    assert "medmm share --with-volumes" in warning and warning in json.loads(sidecar.read_text())["warnings"]

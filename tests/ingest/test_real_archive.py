"""Ingest of every file in shared/data/imaging: one manifest row each, schemas, no PHI anywhere."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from medmm.records import Status
from medmm.schemas import validate_frame
from medmm.tables import read_table

pytestmark = pytest.mark.shared_data


def _rows(run_dir: Path) -> pd.DataFrame:
    return read_table(run_dir / "manifest.parquet").set_index("path", drop=False)


def test_every_input_file_once_with_a_sensible_status(real_run) -> None:  # type: ignore[no-untyped-def]
    manifest = _rows(real_run.run_dir)
    inputs = sorted(
        p.relative_to(real_run.archive).as_posix() for p in real_run.archive.rglob("*") if p.is_file()
    )
    assert manifest["path"].is_unique
    assert sorted(manifest["path"]) == inputs
    assert set(manifest["status"]) <= {s.value for s in Status}
    not_ingested = manifest[manifest["status"].isin(["quarantined"])]
    assert not_ingested["reason"].str.match(r"(?s)^[A-Za-z]+Error: .+ Fix: ").all()
    assert (manifest.loc[manifest["status"] == "ingested", "reason"] == "").all()

    def status(p: str) -> str:
        return str(manifest.loc[p, "status"])

    def reason(p: str) -> str:
        return str(manifest.loc[p, "reason"])

    t = "pydicom_testfiles/test_files/"
    assert status(t + "CT_small.dcm") == "ingested"
    assert reason(t + "MR_truncated.dcm").startswith("TruncatedPixelDataError")
    assert status(t + "waveform_ecg.dcm") == "non_image"
    assert status(t + "dicomdirtests/DICOMDIR") == "non_image"
    assert status(t + "zipMR.gz") == "quarantined"
    assert reason("nibabel_testdata/nifti1.hdr").startswith("MissingCompanionError")
    assert status("nibabel_testdata/small.mnc") == "quarantined" and "MINC2" in reason(
        "nibabel_testdata/small.mnc"
    )
    assert status("oro_nifti_analyze/avg152T1.img") == "companion"
    assert (
        manifest.loc["oro_nifti_analyze/avg152T1.img", "volume_id"]
        == manifest.loc["oro_nifti_analyze/avg152T1.hdr", "volume_id"]
    )
    assert status("brats_subset/train/brats_2013_pat0005_1/License_CC_BY_NC_SA_3.0.txt") == "non_image"
    assert reason("dicom2nifti_series/failing/sliceincrement/001/IM-0001-0007-0001.dcm").startswith(
        "MissingSliceError"
    )
    series = manifest[manifest["path"].str.startswith("totalsegmentator_examples/example_ct_dicom/")]
    assert len(series) == 20 and (series["status"] == "ingested").all() and series["volume_id"].nunique() == 1
    assert (manifest.loc[manifest["format"] == "dicom", "series_id"].dropna().str.startswith("ser-")).all()

    volumes = read_table(real_run.run_dir / "volumes.parquet")
    ingested_ids = set(manifest.loc[manifest["status"] == "ingested", "volume_id"])
    assert set(volumes["volume_id"]) == ingested_ids and volumes["volume_id"].is_unique
    for rel in volumes["path"]:
        assert (real_run.run_dir / rel).is_file()
    ct = volumes.set_index("volume_id").loc[series["volume_id"].iloc[0]]
    assert ct["n_sources"] == 20 and list(ct["shape"]) == [512, 512, 20] and ct["source_format"] == "dicom"
    assert real_run.result.n_files == len(manifest) == sum(real_run.result.counts.values())
    run_json = json.loads((real_run.run_dir / "run.json").read_text())
    assert run_json["stages"]["ingest"]["counts"] == manifest["status"].value_counts().sort_index().to_dict()


def test_tables_match_their_schemas(real_run) -> None:  # type: ignore[no-untyped-def]
    assert validate_frame(read_table(real_run.run_dir / "manifest.parquet"), "manifest") > 300
    assert validate_frame(read_table(real_run.run_dir / "volumes.parquet"), "volumes") > 50


def _phi_values(archive: Path) -> set[str]:
    import pydicom

    tags = ["PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs"]
    values: set[str] = set()
    for path in archive.rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=tags)
        except Exception:
            continue
        for tag in tags:
            value = ds.get(tag)
            if value in (None, ""):
                continue
            text = str(value).strip()
            values.update({text, text.replace("^", " ").strip()})
    # identifiers the archive spells in its own folder/file names are kept in `path` by design
    paths = "\n".join(p.relative_to(archive).as_posix() for p in archive.rglob("*"))
    return {v for v in values if len(v) >= 4 and any(c.isalnum() for c in v) and v not in paths}


def test_no_patient_identity_in_any_output_or_log(real_run) -> None:  # type: ignore[no-untyped-def]
    phi = _phi_values(real_run.archive)
    assert len(phi) > 40  # names, ids and birth dates really are in the inputs
    texts: dict[str, str] = {"logs": real_run.log_text}
    for path in real_run.run_dir.rglob("*"):
        if not path.is_file():
            continue
        name = str(path.relative_to(real_run.run_dir))
        if path.suffix == ".parquet":
            texts[name] = read_table(path).astype(str).to_csv()
        elif path.name.endswith(".nii.gz"):
            with gzip.open(path, "rb") as fh:  # header + extensions (descrip, aux_file, intent_name ...)
                texts[name] = fh.read(65536).decode("latin-1")
        else:
            texts[name] = path.read_bytes().decode("utf-8", errors="replace")
    assert any(k.endswith(".json") and k.startswith("volumes") for k in texts)
    alternatives = "|".join(re.escape(v) for v in sorted(phi, key=len, reverse=True))
    pattern = re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")
    leaks = sorted({(m.group(0), at) for at, text in texts.items() for m in pattern.finditer(text)})
    assert not leaks, "\n".join(map(str, leaks))

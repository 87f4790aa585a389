"""Ids for image files that carry none (`medmm ingest --ids`): matched by path, pseudonymized with the site
key exactly as DICOM and report ids are, into volumes and manifest rows; raw ids never written."""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.imaging.raster import NO_PATIENT_NOTE, given_ids
from medmm.ingest.image_ids import AmbiguousIdsError, FileIds, IdColumns, IdTable
from medmm.ingest.pipeline import ingest_archive
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.tables import read_table


def _value(x: object) -> object:
    """A table cell, with pandas' missing values as None."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else x


def test_lookup_rules(tmp_path: Path) -> None:
    csv = tmp_path / "ids.csv"
    csv.write_bytes(
        "\ufeffpath,patient_id,study_id,modality,notes\r\n"  # a BOM and CRLF, as spreadsheets write
        "train/p1/s1/view1.jpg,p1,s1,DX,\r\n"
        "./p2/s1/view1.jpg,p2,s1,,\r\n"
        'cxr.png,p3,,,"a note\r\nover two lines"\r\n'  # a quoted cell with a line break: one row
        "cxr.png,p3,,,\r\n"  # a repeated identical row is harmless
        ",,,,\r\n".encode()
    )
    t = IdTable.load(csv, modality="CR")
    assert t.lookup("train/p1/s1/view1.jpg") == FileIds("p1", "s1", "DX", table="ids.csv")
    assert t.lookup("CheXpert/train/p1/s1/view1.jpg").patient == "p1"  # archive above the table's root
    assert t.lookup("p1/s1/view1.jpg").patient == "p1"  # archive below it
    assert t.lookup("p2/s1/view1.jpg") == FileIds("p2", "s1", "CR", table="ids.csv")  # default modality
    assert t.lookup("a/b/cxr.png").patient == "p3"
    assert t.lookup("other.png") == FileIds(modality="CR", table="ids.csv")
    only_modality = IdTable({}, "--modality", modality="DX").lookup("any.png")
    assert only_modality == FileIds(modality="DX")
    notes: list[str] = []
    assert given_ids(asdict(only_modality), Pseudonymizer(b"k" * 32), notes)["patient_id"] is None
    assert notes == []  # --modality alone: no ids were asked for, so none is missing
    assert IdTable.load(csv).lookup("other.png") is None
    with pytest.raises(AmbiguousIdsError, match=r"^s1/view1\.jpg: 2 rows of ids\.csv match this file"):
        t.lookup("s1/view1.jpg")


def test_bad_tables_name_the_problem_not_the_ids(tmp_path: Path) -> None:
    csv = tmp_path / "ids.csv"
    csv.write_text("filename,Patientid\na.png,SECRET1\na.png,SECRET2\n")
    with pytest.raises(ConfigError, match=r"no column 'path'.*--path-column"):
        IdTable.load(csv)
    with pytest.raises(ConfigError, match="rows 2 and 3 give the same file different ids") as info:
        IdTable.load(csv, IdColumns(path="filename", patient="Patientid"))
    assert "SECRET" not in str(info.value)
    with pytest.raises(ConfigError, match="no column 'date'"):
        IdTable.load(csv, IdColumns(path="filename", patient="Patientid", time="date"))
    with pytest.raises(ConfigError, match="cannot read"):
        IdTable.load(tmp_path / "missing.csv")


def _pictures(root: Path) -> None:
    root.mkdir()
    for name in ("p1/a.png", "p1/b.jpg", "p2/a.png", "x/dup.png", "y/dup.png", "lost.png"):
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((6, 5), 77, np.uint8)).save(root / name)
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4)), root / "p2" / "t1.nii.gz")


def test_ingest_with_ids(tmp_path: Path) -> None:
    archive, run, key = tmp_path / "archive", tmp_path / "run", tmp_path / "k"
    _pictures(archive)
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "file,subject,visit,modality,taken\n"
        "p1/a.png,MRN-1001,ACC-9,DX,2021-05-04T10:11:12\n"
        "p1/b.jpg,MRN-1001,ACC-9,,2021-05-04\n"
        "p2/a.png,MRN-1002,,,\n"
        "p2/t1.nii.gz,MRN-1002,ACC-7,MR,\n"
        "x/dup.png,MRN-1003,,,\n"
        "y/dup.png,MRN-1004,,,\n"
        "lost.png,,,,\n"
    )
    cols = IdColumns(path="file", patient="subject", study="visit", time="taken")
    table = IdTable.load(csv, cols, modality="CR")
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=table)
    pz = Pseudonymizer(load_key(key))
    m = read_table(run / "manifest.parquet").set_index("path")
    assert len(m) == 7 and set(m["status"]) == {"ingested"}
    v = read_table(run / "volumes.parquet").set_index(read_table(run / "volumes.parquet")["sources"].str[0])
    expect = {
        "p1/a.png": ("MRN-1001", "ACC-9", "DX"),
        "p1/b.jpg": ("MRN-1001", "ACC-9", "CR"),
        "p2/a.png": ("MRN-1002", None, "CR"),
        "p2/t1.nii.gz": ("MRN-1002", "ACC-7", "MR"),  # NIfTI files take ids the same way
        "x/dup.png": ("MRN-1003", None, "CR"),
    }
    for path, (patient, study, modality) in expect.items():
        pid, sid = pz.id(patient, "patient"), (pz.id(study, "study") if study else None)
        for table in (v, m):
            got = [_value(table.loc[path, c]) for c in ("patient_id", "study_id", "modality")]
            assert got == [pid, sid, modality], path
    when = v.loc["p1/a.png", "study_time"]
    assert when == pz.shift_datetime("MRN-1001", datetime(2021, 5, 4, 10, 11, 12)).isoformat()
    assert json.loads((run / v.loc["p1/a.png", "sidecar"]).read_text())["study_time"] == when
    assert _value(v.loc["lost.png", "patient_id"]) is None and NO_PATIENT_NOTE.replace(
        "the ids table", "meta.csv"
    ) in list(v.loc["lost.png", "warnings"])
    for path in run.rglob("*"):  # raw ids are never written
        if path.is_file():
            data = path.read_bytes()
            data = gzip.decompress(data) if path.name.endswith(".gz") else data
            assert b"MRN-" not in data and b"ACC-" not in data, path
    assert "MRN-" not in read_table(run / "manifest.parquet").astype(str).to_string()


def test_ambiguous_match_is_quarantined_and_new_ids_redo_the_run(tmp_path: Path) -> None:
    archive, run, key = tmp_path / "archive", tmp_path / "run", tmp_path / "k"
    _pictures(archive)
    csv = tmp_path / "ids.csv"
    csv.write_text("path,patient_id\nx/dup.png,A\ny/dup.png,B\n")
    first = IdTable.load(csv)
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=first)
    csv.write_text("path,patient_id\ndup.png,A\np1/a.png,C\n")  # dup.png: two files, one bare name
    again = ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=IdTable.load(csv))
    assert again.n_skipped == 0  # other ids: every file is done again
    m = read_table(run / "manifest.parquet").set_index("path")
    assert m.loc["p1/a.png", "patient_id"] == Pseudonymizer(load_key(key)).id("C", "patient")
    assert m.loc["x/dup.png", "patient_id"] == m.loc["y/dup.png", "patient_id"]  # the one row gives both
    csv.write_text("path,patient_id\ndup.png,A\nx/dup.png,D\nu/lost.png,E\nw/lost.png,F\n")
    ingest_archive(archive, run, workers=1, processes=False, key_file=key, ids=IdTable.load(csv))
    m = read_table(run / "manifest.parquet").set_index("path")
    pz = Pseudonymizer(load_key(key))
    assert m.loc["x/dup.png", "patient_id"] == pz.id("D", "patient")  # its exact path wins
    assert m.loc["y/dup.png", "patient_id"] == pz.id("A", "patient")  # only the bare name matches it
    assert m.loc["lost.png", "status"] == "quarantined"  # two rows, two patients: never a guess
    assert m.loc["lost.png", "reason"].startswith("AmbiguousIdsError: lost.png: 2 rows of ids.csv match")
    assert len(m) == 7 and (m["status"] == "ingested").sum() == 6


def test_cli_bad_ids_table_is_an_error_line(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    _pictures(archive)
    csv = tmp_path / "ids.csv"
    csv.write_text("filename,patient\na.png,1\n")
    res = CliRunner().invoke(
        app, ["ingest", str(archive), "--out", str(tmp_path / "run"), "--ids", str(csv), "--scheduler", "x"]
    )
    assert res.exit_code == 2 and "error: " in res.output and "no column 'path'" in res.output
    assert not (tmp_path / "run" / "manifest.parquet").exists()


def test_another_modality_alone_redoes_the_pictures(tmp_path: Path) -> None:
    archive, run, key = tmp_path / "archive", tmp_path / "run", tmp_path / "k"
    archive.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(archive / "a.png")
    for modality in ("DX", "CR"):
        r = ingest_archive(
            archive,
            run,
            workers=1,
            processes=False,
            key_file=key,
            ids=IdTable({}, "--modality", modality=modality),
        )
        assert r.n_skipped == 0
        assert read_table(run / "volumes.parquet")["modality"].tolist() == [modality]
        assert read_table(run / "manifest.parquet")["modality"].tolist() == [modality]

"""The imaging side of report linkage: each volume's accession pseudonym and study-time precision, from
DICOM headers (both header readers) and from ``medmm ingest --ids`` rows of NIfTI files and pictures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from medmm.imaging.dicom_header import _summarise, read_dicom_header
from medmm.imaging.records import accession_pseudonym
from medmm.pseudonym import Pseudonymizer

pydicom = pytest.importorskip("pydicom")


def _saved(tmp_path: Path, name: str, **values: str | None) -> Path:
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    for kw, value in values.items():
        if value is None:
            if kw in ds:
                delattr(ds, kw)
        else:
            setattr(ds, kw, value)
    out = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.dcm"
    ds.save_as(out)
    return out


def _both(path: Path) -> tuple:
    """The summary from the element-stream reader and from pydicom (``fast=False``)."""
    fast = read_dicom_header(path, path.name)
    with path.open("rb") as fh:
        slow = _summarise(fh, path.name, os.path.getsize(path), fast=False)
    return fast, slow


def test_a_study_date_without_study_time_has_date_precision(tmp_path: Path) -> None:
    dated = _saved(tmp_path, "CT_small.dcm", StudyDate="20200304", StudyTime=None)
    timed = _saved(tmp_path, "CT_small.dcm", StudyDate="20200304", StudyTime="101500")
    for inst in _both(dated):
        assert inst.study_datetime == "2020-03-04T00:00:00" and inst.study_time_precision == "date"
    for inst in _both(timed):
        assert inst.study_datetime == "2020-03-04T10:15:00" and inst.study_time_precision == "datetime"


def test_the_accession_number_is_read_by_both_header_readers(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    shipped = Path(str(get_testdata_file("examples_overlay.dcm")))  # carries an AccessionNumber
    given = _saved(tmp_path, "MR_small.dcm", AccessionNumber="ACC 0042 ")
    none = _saved(tmp_path, "MR_small.dcm", AccessionNumber=None)
    for path, want in ((shipped, "8000000000330109"), (given, "ACC 0042"), (none, "")):
        fast, slow = _both(path)
        assert fast.accession_number == slow.accession_number == want


def test_accession_numbers_of_the_real_test_archive_match_pydicom(shared_data: Path) -> None:
    """Every DICOM of the shared pydicom test files (character sets included): the element-stream
    reader gives pydicom's AccessionNumber."""
    folder = shared_data / "imaging" / "pydicom_testfiles"
    checked = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            fast = read_dicom_header(path, path.name)
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # unreadable on purpose (the test files include broken ones)
            continue
        assert fast.accession_number == str(ds.get("AccessionNumber", "") or "").strip(), path.name
        checked += bool(fast.accession_number)
    assert checked >= 20


@pytest.mark.parametrize(("when", "precision"), [("2020-03-01", "date"), ("2020-03-01T10:00:00", "datetime")])
def test_ids_rows_give_nifti_and_picture_volumes_accession_and_precision(
    tmp_path: Path, when: str, precision: str
) -> None:
    import nibabel as nib
    from PIL import Image

    from medmm.imaging.convert import convert_image_file

    root, run = tmp_path / "archive", tmp_path / "run"
    root.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), root / "a.nii.gz")
    Image.new("L", (5, 4), 7).save(root / "b.png")
    pz = Pseudonymizer(b"k" * 32)
    ids = {
        "patient": "P-9",
        "study": "",
        "study_time": when,
        "modality": "CT",
        "accession": "ACC-9",
        "table": "t",
    }
    for rel, fmt in (("a.nii.gz", "nifti"), ("b.png", "png")):
        rec = convert_image_file(rel, root, run, pz, fmt, ids=ids)
        assert rec.accession_id == accession_pseudonym(pz, "ACC-9") == pz.id("ACC-9", "report")
        assert rec.study_time_precision == precision and rec.study_time is not None
        bare = convert_image_file(rel, root, run, pz, fmt, ids=None)
        assert bare.accession_id is None and bare.study_time_precision is None


def test_the_ids_table_reads_an_accession_column(tmp_path: Path) -> None:
    from medmm.ingest.image_ids import IdTable

    p = tmp_path / "ids.csv"
    p.write_text("path,patient_id,study_time,accession\nx.png,P1,2020-01-02,A-1\ny.png,P2,,\n")
    table = IdTable.load(p)
    found, other = table.lookup("x.png"), table.lookup("y.png")
    assert found is not None and other is not None
    assert found.accession == "A-1" and other.accession == ""

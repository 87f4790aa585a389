"""A DICOM file whose pixel data cannot be decoded is quarantined without the header values that
pydicom's message quotes.

pydicom refuses a Photometric Interpretation or Transfer Syntax UID it does not know by quoting it
(``Unknown (0028,0004) 'Photometric Interpretation' value 'SMITH^JOHN'``); the quarantine reason
embedded that message, so a misfilled element put a name or an MRN into ``manifest.parquet`` (and
from there into ``medmm share`` copies: a reason's free text is shared with known file names replaced).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from privacy_archive import identity_forms

from medmm.imaging.errors import library_message
from medmm.ingest.pipeline import ingest_archive


def _write(path: Path, photometric: str | None = None, syntax: str | None = None) -> None:
    import pydicom
    import pydicom.data
    import pydicom.uid
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    if photometric is not None:  # written raw: pydicom refuses such a value when it is set
        value = photometric.encode() + b" " * (len(photometric) % 2)
        tag = Tag(0x00280004)
        ds._dict[tag] = RawDataElement(tag, "CS", len(value), value, 0, True, True)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    ds.save_as(path)


def test_decoder_messages_hide_header_values(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    _write(archive / "photometric.dcm", photometric="SMITH^JOHN")
    _write(archive / "syntax.dcm", syntax="1.2.999.MRN4471923")
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    ingest_archive(archive, tmp_path / "run", workers=1, processes=False, key_file=key)
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet").set_index("path")
    reasons = manifest["reason"].to_dict()
    assert set(manifest["status"]) == {"quarantined"}
    # still says what failed and which element
    assert "PixelDecodeError: photometric.dcm" in reasons["photometric.dcm"]
    assert "'Photometric Interpretation'" in reasons["photometric.dcm"]
    assert "PixelDecodeError: syntax.dcm" in reasons["syntax.dcm"]
    text = " ".join(reasons.values()).lower()
    forms = identity_forms("Smith^John") | identity_forms("MRN4471923")
    assert not [f for f in forms if f.lower() in text], reasons


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("A (0028,0100) 'Bits Allocated' value of '12' is invalid", "'12'"),
        ("Unknown 'Photometric Interpretation' value 'YBR_FULL_422'", "'YBR_FULL_422'"),
        ("syntax '1.2.840.10008.1.2.4.50' not supported", "'1.2.840.10008.1.2.4.50'"),
        ("expected '524288' bytes", "'524288'"),
        ("(0010,0010) 'Patient's Name' has an invalid value", "'Patient's Name'"),
    ],
)
def test_library_message_keeps_dicom_terms(message: str, kept: str) -> None:
    assert kept in library_message(ValueError(message))


def test_library_message_hides_free_text() -> None:
    out = library_message(ValueError("bad value \"Smith^John\" and 'MRN4471923' in 'Patient ID'"))
    assert "Smith" not in out and "MRN4471923" not in out and "'Patient ID'" in out


@pytest.mark.parametrize(
    ("message", "hidden"),
    [
        # was "<value not shown>BRIEN^JOHN'": the apostrophe closed the quote
        ("Unknown value 'O'BRIEN^JOHN' for VR PN", "BRIEN"),
        # was kept as a number: a birth date, a record number
        ("Invalid value for VR DA: '19800101'.", "19800101"),
        ("Invalid value for VR LO: '4471923'.", "4471923"),
    ],
)
def test_library_message_hides_apostrophe_names_and_long_numbers(message: str, hidden: str) -> None:
    out = library_message(ValueError(message))
    assert hidden not in out and "<value not shown>" in out, out


def test_unexpected_ingest_error_hides_values() -> None:
    """An exception nobody foresaw becomes ``IngestTaskError: FILE: processing failed unexpectedly (...)``
    with the library's quoted values hidden (pydicom: ``invalid literal for int(): 'SMITH^JOHN'``)."""
    from medmm.ingest.tasks import unexpected

    reason = unexpected("x.dcm", ValueError("invalid literal for int() with base 10: 'SMITH^JOHN'"))
    assert reason.startswith("IngestTaskError: x.dcm: processing failed unexpectedly (ValueError: ")
    assert "smith" not in reason.lower()

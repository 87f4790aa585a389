"""`medmm share` reduces free-text reasons to medmm's own words: a patient's name inside a third-party
library's message (a bare word, no path, no code) does not reach the share; medmm's text, the reason's
category and the pseudonyms stay."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from medmm.errors import reason_of
from medmm.pseudonym import Pseudonymizer
from medmm.share import share_run
from medmm.share.names import SourceNames
from medmm.share.reasons import REMOVED, reduce_text

Scan = Callable[[Path, Iterable[str]], list[str]]


class InvalidDicomError(Exception):
    """Stands for a third-party library's exception class."""


#: A library's message with a patient's name in it (invented name: no path, no digits).
LIBRARY = "File is missing DICOM File Meta Information header for patient Qwzyxa^Brannigan Elsbeth"


def test_a_name_in_a_library_message_is_removed_and_medmm_text_kept() -> None:
    p = Pseudonymizer(b"k" * 32)
    names = SourceNames.build(["DOE^JOHN/img.dcm"], [], p)
    reason = reason_of(
        InvalidDicomError(f"DOE^JOHN/img.dcm: cannot read the file ({LIBRARY}). Fix: re-export it")
    )
    shared = reduce_text(reason, names)
    for name in ("Qwzyxa", "Brannigan", "Elsbeth", "DOE", "JOHN"):
        assert name not in shared
    assert shared.startswith(f"InvalidDicomError: {p.id('DOE^JOHN/img.dcm', 'file')}: cannot read the file (")
    assert shared.endswith("). Fix: re-export it") and REMOVED in shared
    # one marker per run of removed tokens, not one per word
    assert "patient " + REMOVED + ")" in shared and REMOVED + " " + REMOVED not in shared


def test_medmm_reasons_pass_unchanged_but_for_their_names() -> None:
    p = Pseudonymizer(b"k" * 32)
    names = SourceNames.build(["a/b.dcm"], [], p)
    for reason, names_in in (
        (
            "EmptyFileError: a/b.dcm: file is empty (0 bytes). Fix: copy it again from the source",
            True,
        ),
        ("rt: RT Plan Storage, kept as an RT object", False),
        ("MissingSliceError: a/ (4 files of one series): missing slice: 161 slice(s) missing", True),
    ):
        shared = reduce_text(reason, names)
        assert REMOVED not in shared, shared
        assert shared == (names.scrub(reason) if names_in else reason)


def test_a_shared_run_carries_no_name_from_a_library_reason(tmp_path: Path, strings_in_run: Scan) -> None:
    from pydicom.data import get_testdata_file

    from medmm.ingest.pipeline import ingest_archive

    key = tmp_path / "site.key"
    key.write_text("ef" * 32 + "\n")
    key.chmod(0o600)
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copyfile(str(get_testdata_file("CT_small.dcm")), archive / "scan.dcm")
    (archive / "broken.dcm").write_bytes(b"")
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=0, key_file=key)
    manifest = pd.read_parquet(run / "manifest.parquet")
    row = manifest["path"] == "broken.dcm"
    assert row.sum() == 1
    # as a library's error would have put it there: its message names the patient
    manifest.loc[row, "reason"] = reason_of(
        InvalidDicomError(f"broken.dcm: cannot read the file ({LIBRARY})")
    )
    manifest.to_parquet(run / "manifest.parquet")
    share_run(run, tmp_path / "share", key_file=key)
    assert strings_in_run(tmp_path / "share", ["Qwzyxa", "Brannigan", "Elsbeth"]) == []
    shared = pd.read_parquet(tmp_path / "share" / "manifest.parquet")
    p = Pseudonymizer(bytes.fromhex("ef" * 32))
    reason = shared.set_index("path").loc[p.id("broken.dcm", "file"), "reason"]
    assert reason.startswith(f"InvalidDicomError: {p.id('broken.dcm', 'file')}: cannot read the file (")
    assert REMOVED in reason
    report = json.loads((tmp_path / "share" / "share_report.json").read_text())
    assert report["tables"]["manifest.parquet"]["text_removed"] == {"reason": 1}


def test_medmm_reason_naming_an_unsupported_format_keeps_the_format() -> None:
    """Ingest writes a format's name upper-cased from its enum (``MINC2 image``, ``MGH image``): medmm's
    words, not a constant of its source; they were removed (``[text removed] image``), as on the demo."""
    from medmm.ingest.sniff import OTHER_IMAGE_FORMATS
    from medmm.ingest.tasks import _READS, _display

    names = SourceNames.build(["scan.mnc"], [], Pseudonymizer(b"k" * 32))
    for fmt in OTHER_IMAGE_FORMATS:
        reason = f"UnsupportedFormatError: scan.mnc: {_display(fmt)} image: medmm ingest reads {_READS} only"
        shared = reduce_text(reason, names)
        assert REMOVED not in shared, shared
        assert f" {_display(fmt)} image: medmm ingest reads DICOM, NIfTI, ANALYZE" in shared

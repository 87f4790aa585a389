"""A DICOM JPEG 2000 frame whose SIZ header is damaged (pydicom's JPEG2000-embedded-sequence-delimiter.dcm:
an item delimiter written over its size fields) is reported as damaged pixel data with the sizes that
disagree, not with advice to install a decoder (found running medmm ingest on pydicom's test files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medmm.imaging import assemble_series, convert_stack, read_dicom_header
from medmm.imaging.errors import PixelDecodeError
from medmm.pseudonym import Pseudonymizer


def test_damaged_j2k_header_named(tmp_path: Path) -> None:
    (tmp_path / "ct.dcm").write_bytes(
        Path(get_testdata_file("JPEG2000-embedded-sequence-delimiter.dcm")).read_bytes()
    )
    inst = read_dicom_header(tmp_path / "ct.dcm", "ct.dcm")
    (stack,) = assemble_series([inst]).stacks
    with pytest.raises(PixelDecodeError) as info:
        convert_stack(stack, [inst], tmp_path, tmp_path / "run", Pseudonymizer(b"k" * 32))
    text = str(info.value)
    assert text.startswith(
        "ct.dcm: pixel data is damaged: the JPEG 2000 codestream declares 3722445056 x 1024 pixels but "
        "Columns x Rows say 256 x 1024"
    ), text
    assert "install the decoder" not in text and "Fix: copy the file again" in text


def test_intact_j2k_dicom_still_decodes(tmp_path: Path) -> None:
    for name in ("MR_small_jp2klossless.dcm", "JPEG2000.dcm", "693_J2KI.dcm"):
        (tmp_path / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
        inst = read_dicom_header(tmp_path / name, name)
        (stack,) = assemble_series([inst]).stacks
        rec = convert_stack(stack, [inst], tmp_path, tmp_path / "run", Pseudonymizer(b"k" * 32))
        assert rec.shape[:2] == [inst.columns, inst.rows], name

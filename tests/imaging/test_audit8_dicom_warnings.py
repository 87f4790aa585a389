"""Warnings a demanding user needs on DICOM volumes (found running medmm ingest on nibabel's and pydicom's
test files): a single slice without SliceThickness / SpacingBetweenSlices got a third spacing of 1.0 mm
silently; a MONOCHROME1 image (CR) keeps its stored values, which DICOM viewers show inverted, without a
word; and pictures without patient geometry were said to have their "axes left as stored" although their
rows are counted from the bottom."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel
from pydicom.data import get_testdata_file

from medmm.imaging import assemble_series, convert_stack, read_dicom_header
from medmm.imaging.convert import MONOCHROME1_NOTE, NO_THICKNESS_NOTE
from medmm.imaging.records import VolumeRecord
from medmm.pseudonym import Pseudonymizer

NICOM = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"  # nibabel's own test files


def _convert(src: Path, tmp_path: Path) -> VolumeRecord:
    root = tmp_path / src.name
    root.mkdir()
    shutil.copy(src, root / "x.dcm")
    inst = read_dicom_header(root / "x.dcm", "x.dcm")
    (stack,) = assemble_series([inst]).stacks
    return convert_stack(stack, [inst], root, tmp_path / "run", Pseudonymizer(b"k" * 32))


def test_single_slice_without_thickness_is_flagged(tmp_path: Path) -> None:
    rec = _convert(NICOM / "slicethickness_empty_string.dcm", tmp_path)
    assert rec.shape == [1, 384, 384] and rec.spacing[0] == 1.0  # a sagittal slice: x is its normal
    assert NO_THICKNESS_NOTE in rec.warnings
    with_thickness = _convert(Path(get_testdata_file("CT_small.dcm")), tmp_path)  # SliceThickness 5 mm
    assert with_thickness.shape[2] == 1 and NO_THICKNESS_NOTE not in with_thickness.warnings


def test_monochrome1_is_flagged_and_picture_axes_described(tmp_path: Path) -> None:
    base = Path(get_testdata_file("CT_small.dcm")).parent
    cr = base / "dicomdirtests" / "77654033" / "CR1" / "6154"  # MONOCHROME1 CR without patient geometry
    rec = _convert(cr, tmp_path)
    assert MONOCHROME1_NOTE in rec.warnings
    assert "no patient geometry: affine is pixel spacing only, rows counted from the bottom" in rec.warnings
    assert NO_THICKNESS_NOTE not in rec.warnings  # a picture has no third spacing to invent
    mr = _convert(Path(get_testdata_file("MR_small.dcm")), tmp_path)  # MONOCHROME2
    assert MONOCHROME1_NOTE not in mr.warnings

"""2D images (CR, US, colour) are one-slice volumes; unsupported pixel data and real DICOMDIR trees."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medmm.imaging import DicomKind, assemble_series, convert_stack, read_dicom_header
from medmm.imaging.errors import MissingSliceError
from medmm.pseudonym import Pseudonymizer
from medmm.records import Status

TF = "imaging/pydicom_testfiles/test_files"


@pytest.mark.parametrize(
    ("name", "shape", "orientation"),
    [
        ("dicomdirtests/77654033/CR1/6154", [16, 16, 1], "none"),  # computed radiography
        ("ExplVR_BigEnd.dcm", [80, 60, 1, 3], "none"),  # RGB ultrasound frame
        ("examples_ybr_color.dcm", [320, 240, 30, 3], "none"),  # YBR multi-frame ultrasound cine
        ("examples_palette.dcm", [800, 350, 1, 3], "none"),  # palette colour expanded to RGB
        ("CT_small.dcm", [128, 128, 1], "RAS"),  # one CT slice with patient geometry
    ],
)
def test_single_images_are_volumes(
    shared_data: Path,
    tmp_path: Path,
    pseudonymizer: Pseudonymizer,
    name: str,
    shape: list[int],
    orientation: str,
) -> None:
    rel = f"{TF}/{name}"
    inst = read_dicom_header(shared_data / rel, rel)
    (stack,) = assemble_series([inst]).stacks
    rec = convert_stack(stack, [inst], shared_data, tmp_path, pseudonymizer)
    assert rec.shape == shape and rec.orientation == orientation
    data = np.asarray(nib.load(tmp_path / rec.path).dataobj)
    assert list(data.shape) == shape and data.max() > data.min()


def test_ct_slice_in_hounsfield_units(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    import pydicom

    rel = f"{TF}/CT_small.dcm"
    inst = read_dicom_header(shared_data / rel, rel)
    (stack,) = assemble_series([inst]).stacks
    rec = convert_stack(stack, [inst], shared_data, tmp_path, pseudonymizer)
    stored = pydicom.dcmread(shared_data / rel).pixel_array.astype(np.float64)
    hu = np.asarray(nib.load(tmp_path / rec.path).dataobj, dtype=np.float64)
    expected = stored * float(inst.rescale_slope or 1) + float(inst.rescale_intercept or 0)
    assert sorted(hu.ravel().tolist()) == sorted(expected.ravel().tolist())
    assert rec.spacing[2] == pytest.approx(inst.slice_thickness or 1.0)


def _wsi(path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "SM", generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 4, 4, 2, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(4 * 4 * 2 * 3)
    ds.save_as(path, enforce_file_format=True)


def test_whole_slide_image_is_quarantined_with_reason(tmp_path: Path) -> None:
    _wsi(tmp_path / "slide.dcm")
    inst = read_dicom_header(tmp_path / "slide.dcm", "slide.dcm")
    assert inst.kind is DicomKind.unsupported_image
    out = assemble_series([inst])
    assert not out.stacks
    outcome = out.outcomes["slide.dcm"]
    assert outcome.status is Status.quarantined
    assert outcome.reason.startswith("UnsupportedImageError: slide.dcm: VL Whole Slide Microscopy")


def test_multiframe_with_missing_frame_position(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    from test_multiframe import write_enhanced_ct  # sibling test module (rootdir on sys.path)

    write_enhanced_ct(tmp_path / "gap.dcm", [0.0, 2.0, 4.0, 8.0, 10.0], [1.0] * 5)
    inst = read_dicom_header(tmp_path / "gap.dcm", "gap.dcm")
    (stack,) = assemble_series([inst]).stacks
    assert [p.error for p in stack.problems] == ["MissingSliceError"]
    with pytest.raises(MissingSliceError, match=r"gap\.dcm: missing slice"):
        convert_stack(stack, [inst], tmp_path, tmp_path / "run", pseudonymizer)


def test_dicomdir_tree_every_file_once(shared_data: Path) -> None:
    root = shared_data / TF / "dicomdirtests"
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("README"))
    insts = [read_dicom_header(p, p.relative_to(shared_data).as_posix()) for p in files]
    out = assemble_series(insts)
    placed = [p for s in out.stacks for p in s.paths] + list(out.outcomes)
    assert sorted(placed) == sorted(i.path for i in insts)
    dicomdirs = [o for o in out.outcomes.values() if o.kind is DicomKind.dicomdir]
    assert len(dicomdirs) == 8 and all(o.status is Status.non_image for o in dicomdirs)
    multi = [s for s in out.stacks if len(s.paths) > 2 and not s.problems]
    assert multi  # the real MR series assemble into clean stacks

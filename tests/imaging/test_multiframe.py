"""Enhanced multi-frame objects: frames sorted along the normal with per-frame rescale (synthetic file)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medmm.imaging import DicomKind, assemble_series, convert_stack, read_dicom_header
from medmm.pseudonym import Pseudonymizer

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _item(**kw: object) -> Dataset:
    ds = Dataset()
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def write_enhanced_ct(path: Path, zs: list[float], slopes: list[float]) -> np.ndarray:
    """An Enhanced CT with frames stored in the order of ``zs``; returns the stored frames."""
    rows, cols = 3, 2
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_CT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "SYNTH-1", "CT"
    ds.StudyDate, ds.StudyTime = "20200102", "101500"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, len(zs)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SharedFunctionalGroupsSequence = [
        _item(
            PlaneOrientationSequence=[_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
            PixelMeasuresSequence=[_item(PixelSpacing=[0.5, 0.8], SliceThickness=2.0)],
        )
    ]
    ds.PerFrameFunctionalGroupsSequence = [
        _item(
            PlanePositionSequence=[_item(ImagePositionPatient=[10.0, 20.0, z])],
            PixelValueTransformationSequence=[_item(RescaleSlope=s, RescaleIntercept=-1000.0)],
        )
        for z, s in zip(zs, slopes, strict=True)
    ]
    frames = np.stack([np.full((rows, cols), 1000 + 10 * k, dtype=np.int16) for k in range(len(zs))])
    frames[:, 0, 1] += 1  # mark row 0 / column 1 to check the in-plane axes
    ds.PixelData = frames.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return frames


def test_enhanced_multiframe_sorted_and_rescaled(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    zs, slopes = [4.0, 0.0, 6.0, 2.0], [1.0, 2.0, 1.0, 1.0]
    frames = write_enhanced_ct(tmp_path / "mf.dcm", zs, slopes)
    inst = read_dicom_header(tmp_path / "mf.dcm", "mf.dcm")
    assert inst.kind is DicomKind.multiframe_image and inst.n_frames == 4
    assert inst.frame_positions and [p[2] for p in inst.frame_positions] == zs
    (stack,) = assemble_series([inst]).stacks
    assert stack.frame_order == [1, 3, 0, 2] and stack.spacing == 2.0 and not stack.problems
    rec = convert_stack(stack, [inst], tmp_path, tmp_path / "run", pseudonymizer)
    img = nib.load(tmp_path / "run" / rec.path)
    data = np.asarray(img.dataobj)
    assert rec.shape == [2, 3, 4] and rec.spacing == pytest.approx([0.8, 0.5, 2.0])
    # RAS: x = -L, so the column axis is flipped; slices ascend in z
    expected = np.stack(
        [frames[k].astype(np.float32).T[::-1, ::-1] * slopes[k] - 1000 for k in (1, 3, 0, 2)], axis=2
    )
    np.testing.assert_array_equal(data, expected)
    world = nib.affines.apply_affine(img.affine, [0, 0, 0])
    np.testing.assert_allclose(world, [-10.0 - 0.8, -20.0 - 2 * 0.5, 0.0])
    assert rec.study_time and not rec.study_time.startswith("2020-01-02")


def test_multiframe_frames_at_one_position_are_a_time_series(
    tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    write_enhanced_ct(tmp_path / "cine.dcm", [5.0] * 4, [1.0] * 4)
    inst = read_dicom_header(tmp_path / "cine.dcm", "cine.dcm")
    (stack,) = assemble_series([inst]).stacks
    assert not stack.problems and "time series" in stack.warnings[0]
    rec = convert_stack(stack, [inst], tmp_path, tmp_path / "run", pseudonymizer)
    data = np.asarray(nib.load(tmp_path / "run" / rec.path).dataobj)
    assert rec.shape == [2, 3, 1, 4]
    np.testing.assert_array_equal(data[0, 0, 0, :], [10 * k for k in range(4)])  # frames in stored order

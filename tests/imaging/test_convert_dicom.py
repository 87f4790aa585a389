"""DICOM series -> RAS NIfTI against dcm2niix / dicom2nifti references and across transfer syntaxes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import DicomInstance, assemble_series, convert_stack, read_dicom_header
from medmm.imaging.errors import GantryTiltError, PixelDecodeError
from medmm.imaging.records import VolumeRecord
from medmm.pseudonym import Pseudonymizer
from medmm.schemas import validate_frame
from medmm.tables import records_to_frame

IMG = "imaging"
D2N = f"{IMG}/dicom2nifti_series"


def _headers(root: Path, folder: str) -> list[DicomInstance]:
    files = sorted(p for p in (root / folder).rglob("*") if p.is_file() and p.suffix != ".gz")
    return [read_dicom_header(p, p.relative_to(root).as_posix()) for p in files]


def _convert_folder(root: Path, folder: str, run: Path, ps: Pseudonymizer) -> VolumeRecord:
    insts = _headers(root, folder)
    out = assemble_series(insts)
    assert len(out.stacks) == 1 and not out.outcomes, [s.reason for s in out.stacks]
    return convert_stack(out.stacks[0], insts, root, run, ps)


def _canonical(path: Path) -> nib.Nifti1Image:
    return nib.as_closest_canonical(nib.load(path))


def test_totalsegmentator_ct_matches_dcm2niix_geometry(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    rec = _convert_folder(
        shared_data, f"{IMG}/totalsegmentator_examples/example_ct_dicom", tmp_path, pseudonymizer
    )
    assert rec.shape == [512, 512, 20] and rec.n_sources == 20 and rec.orientation == "RAS"
    # the segmentation TotalSegmentator wrote for this DICOM series is in dcm2niix geometry (LAS)
    ref = _canonical(shared_data / f"{IMG}/totalsegmentator_examples/example_seg_dicom.nii.gz")
    ours = nib.load(tmp_path / rec.path)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    np.testing.assert_allclose(rec.spacing, ref.header.get_zooms()[:3], atol=1e-4)
    hu = np.asarray(ours.dataobj)
    assert hu.dtype == np.int16 and hu.min() == -1024 and 1000 < hu.max() < 4000  # Hounsfield units
    assert 0.3 < (hu <= -900).mean() < 0.9  # air around the body
    # the organ labels TotalSegmentator drew on this series land on tissue of the right density
    seg = np.asarray(ref.dataobj)
    liver, spleen = np.median(hu[seg == 5]), np.median(hu[seg == 1])
    assert 40 < liver < 150 and 30 < spleen < 150, (liver, spleen)
    side = json.loads((tmp_path / rec.sidecar).read_text())
    assert side["modality"] == "CT" and side["units"] == "HU" and side["shape"] == [512, 512, 20]
    assert rec.volume_id.startswith("vol-") and rec.series_id and rec.series_id.startswith("ser-")
    validate_frame(records_to_frame([rec], VolumeRecord), "volumes")


def test_dicom2nifti_generic_voxel_for_voxel(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    rec = _convert_folder(shared_data, f"{D2N}/generic/anatomical/001", tmp_path, pseudonymizer)
    ref = _canonical(shared_data / f"{D2N}/generic/anatomical/001_ground_truth.nii.gz")
    ours = nib.load(tmp_path / rec.path)
    assert ours.shape == ref.shape == (4, 256, 256)
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))
    assert rec.patient_id and rec.patient_id.startswith("pat-") and rec.study_id


def test_dicom2nifti_compressed_copies_agree(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    # the compressed copies hold another (same-geometry) acquisition than `anatomical`: same affine as
    # the ground truth, and identical voxels across the four lossless codecs
    ref = _canonical(shared_data / f"{D2N}/generic/anatomical/001_ground_truth.nii.gz")
    volumes = []
    for codec in ("rle", "jpeg", "jpegls", "j2k"):
        rec = _convert_folder(shared_data, f"{D2N}/generic/compressed_{codec}/001", tmp_path, pseudonymizer)
        ours = nib.load(tmp_path / rec.path)
        np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
        volumes.append(np.asarray(ours.dataobj))
    for other in volumes[1:]:
        np.testing.assert_array_equal(other, volumes[0])
    assert volumes[0].shape == (4, 256, 256) and volumes[0].max() > 0


@pytest.mark.parametrize("vendor", ["siemens", "philips"])
def test_vendor_series_geometry(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer, vendor: str
) -> None:
    folder = f"{D2N}/{vendor}/anatomical/001"
    rec = _convert_folder(shared_data, folder, tmp_path, pseudonymizer)
    insts = sorted(_headers(shared_data, folder), key=lambda i: i.path)
    ours = nib.load(tmp_path / rec.path)
    # every source slice's first voxel lands where its ImagePositionPatient says (LPS -> RAS)
    for inst in insts:
        ipp = np.array(inst.image_position) * [-1, -1, 1]
        ijk = np.linalg.solve(ours.affine, [*ipp, 1.0])[:3]
        assert np.allclose(ijk, np.round(ijk), atol=1e-3)


def test_transfer_syntax_copies_identical_and_match_dcm2niix(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    folder = f"{IMG}/dcm_qa_ts_transfer_syntaxes"
    ref = _canonical(shared_data / folder / "ref_1.nii")
    syntaxes = set()
    for i in range(1, 10):
        rel = f"{folder}/{i}.dcm"
        inst = read_dicom_header(shared_data / rel, rel)
        syntaxes.add(inst.transfer_syntax_uid)
        (stack,) = assemble_series([inst]).stacks
        rec = convert_stack(stack, [inst], shared_data, tmp_path, pseudonymizer)
        ours = nib.load(tmp_path / rec.path)  # Siemens mosaic unpacked to 64x64x35
        assert ours.shape == ref.shape, rel
        np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj), err_msg=rel)
        np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
    assert len(syntaxes) == 7  # explicit/implicit/big endian, RLE, JPEG lossless, JPEG-LS, J2K


def test_mr_small_codecs_decode_equal(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    tf = f"{IMG}/pydicom_testfiles/test_files"

    def volume(name: str) -> np.ndarray:
        rel = f"{tf}/{name}"
        inst = read_dicom_header(shared_data / rel, rel)
        (stack,) = assemble_series([inst]).stacks
        rec = convert_stack(stack, [inst], shared_data, tmp_path, pseudonymizer)
        return np.asarray(nib.load(tmp_path / rec.path).dataobj).astype(np.float64)

    base = volume("MR_small.dcm")
    assert base.shape == (64, 64, 1)
    for name in ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_bigendian.dcm", "MR_small_implicit.dcm"]:  # fmt: skip
        np.testing.assert_array_equal(volume(name), base, err_msg=name)
    # lossy JPEG baseline vs the lossless RLE copy of the same RGB image: close, not equal
    lossless, lossy = volume("SC_rgb_rle.dcm"), volume("SC_rgb_jpeg_dcmtk.dcm")
    assert lossy.shape == lossless.shape == (100, 100, 1, 3)
    assert 0 < np.abs(lossy - lossless).mean() < 3


def test_undecodable_pixels_and_quarantined_stack(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    rel = f"{IMG}/pydicom_testfiles/test_files/JPEG-lossy.dcm"  # known-corrupt JPEG stream
    inst = read_dicom_header(shared_data / rel, rel)
    (stack,) = assemble_series([inst]).stacks
    with pytest.raises(PixelDecodeError, match=r"JPEG-lossy\.dcm: cannot decode pixel data"):
        convert_stack(stack, [inst], shared_data, tmp_path, pseudonymizer)
    insts = _headers(shared_data, f"{D2N}/failing/gantrytilting/001")
    (tilted,) = assemble_series(insts).stacks
    with pytest.raises(GantryTiltError):
        convert_stack(tilted, insts, shared_data, tmp_path, pseudonymizer)
    (sheared,) = assemble_series(insts, allow_tilt=True).stacks
    rec = convert_stack(sheared, insts, shared_data, tmp_path, pseudonymizer)
    assert rec.shape[2] == 4 and any("gantry tilt" in w for w in rec.warnings)


def test_ids_deterministic_and_no_phi_in_sidecar(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    folder = f"{D2N}/generic/anatomical/001"
    a = _convert_folder(shared_data, folder, tmp_path / "a", pseudonymizer)
    b = _convert_folder(shared_data, folder, tmp_path / "b", pseudonymizer)
    assert a.volume_id == b.volume_id and a.patient_id == b.patient_id
    text = (tmp_path / "a" / a.sidecar).read_text()
    inst = _headers(shared_data, folder)[0]
    for raw in (inst.patient_key, inst.study_uid, inst.series_uid, inst.sop_instance_uid):
        assert raw and raw not in text
    if inst.study_datetime:
        assert inst.study_datetime[:10] not in text

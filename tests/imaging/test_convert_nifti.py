"""NIfTI-1/2, 4D and ANALYZE 7.5 files -> RAS volumes with nibabel's affines; label maps stay aligned."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import convert_image_file
from medmm.imaging.errors import ImageFileError, MissingCompanionError
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize(
    ("rel", "fmt", "shape"),
    [
        ("imaging/oro_nifti_analyze/avg152T1.hdr", "analyze", [91, 109, 91]),
        ("imaging/oro_nifti_analyze/avg152T1.img", "analyze", [91, 109, 91]),
        ("imaging/nibabel_testdata/example4d.nii.gz", "nifti", [128, 96, 24, 2]),
        ("imaging/nibabel_testdata/example_nifti2.nii.gz", "nifti", [32, 20, 12, 2]),
        ("imaging/nibabel_testdata/anatomical.nii", "nifti", [33, 41, 25]),
        ("imaging/nibabel_testdata/functional.nii", "nifti", [17, 21, 3, 20]),
        ("imaging/nibabel_testdata/reoriented_anat_moved.nii", "nifti", [21, 26, 22]),
    ],
)
def test_matches_nibabel_canonical(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer, rel: str, fmt: str, shape: list[int]
) -> None:
    rec = convert_image_file(rel, shared_data, tmp_path, pseudonymizer, fmt)
    src = nib.squeeze_image(nib.load(shared_data / rel.replace(".img", ".hdr")))  # dim[0]=4, 1-long 4th axis
    ref = nib.as_closest_canonical(src)
    ours = nib.load(tmp_path / rec.path)
    assert rec.shape == shape == list(ours.shape)
    assert rec.orientation == "RAS" and nib.aff2axcodes(ours.affine) == ("R", "A", "S")
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ours.dataobj, dtype=np.float64), ref.get_fdata(), rtol=1e-6, atol=1e-6
    )
    # voxels keep their world position and value: source index -> world -> our index
    rng = np.random.default_rng(0)
    ijk = np.stack([rng.integers(0, n, 20) for n in src.shape[:3]], axis=1)
    back = nib.affines.apply_affine(np.linalg.inv(ours.affine), nib.affines.apply_affine(src.affine, ijk))
    np.testing.assert_allclose(back, np.round(back), atol=1e-4)
    src_data, our_data = src.get_fdata(), np.asarray(ours.dataobj, dtype=np.float64)
    idx = np.round(back).astype(int)
    np.testing.assert_allclose(our_data[tuple(idx.T)], src_data[tuple(ijk.T)], rtol=1e-6)
    assert rec.source_format.value == fmt and rec.sources == [rel]
    assert json.loads((tmp_path / rec.sidecar).read_text())["orientation"] == "RAS"


def test_nifti2_stays_nifti2_content(shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    rel = "imaging/nibabel_testdata/example_nifti2.nii.gz"
    assert isinstance(nib.load(shared_data / rel), nib.Nifti2Image)
    rec = convert_image_file(rel, shared_data, tmp_path, pseudonymizer, "nifti")
    assert rec.dtype == "int16"


PYR = "pyradiomics_labeled/nifti_converted"
BRATS = "brats_subset/train/brats_2013_pat0005_1"
PAIRS = [
    (f"{PYR}/brain1_image", f"{PYR}/brain1_label"),
    (f"{PYR}/breast1_image", f"{PYR}/breast1_label"),
    (f"{BRATS}/Flair_subtrMeanDivStd", f"{BRATS}/OTMultiClass"),
]


@pytest.mark.parametrize(("image", "mask"), [(f"{a}.nii.gz", f"{b}.nii.gz") for a, b in PAIRS])
def test_image_and_mask_stay_aligned(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer, image: str, mask: str
) -> None:
    img = convert_image_file(f"imaging/{image}", shared_data, tmp_path, pseudonymizer, "nifti")
    lab = convert_image_file(f"imaging/{mask}", shared_data, tmp_path, pseudonymizer, "nifti")
    assert img.shape == lab.shape
    np.testing.assert_allclose(img.affine, lab.affine, atol=1e-4)
    # the labelled voxels carry the same world coordinates before and after conversion
    src = nib.load(shared_data / "imaging" / mask)
    src_labels = np.asarray(src.dataobj)
    ours = nib.load(tmp_path / lab.path)
    ijk = np.argwhere(src_labels > 0)[:50]
    world = nib.affines.apply_affine(src.affine, ijk)
    back = np.round(nib.affines.apply_affine(np.linalg.inv(ours.affine), world)).astype(int)
    got = np.asarray(ours.dataobj)[tuple(back.T)]
    np.testing.assert_array_equal(got, src_labels[tuple(ijk.T)])
    assert img.volume_id != lab.volume_id


def test_bad_image_files(shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    run = tmp_path / "run"
    shutil.copy(shared_data / "imaging/oro_nifti_analyze/avg152T1.hdr", archive / "lonely.hdr")
    with pytest.raises(MissingCompanionError, match=r"lonely\.hdr has no companion lonely\.img"):
        convert_image_file("lonely.hdr", archive, run, pseudonymizer, "analyze")
    (archive / "empty.nii").write_bytes(b"")
    with pytest.raises(ImageFileError, match="empty"):
        convert_image_file("empty.nii", archive, run, pseudonymizer, "nifti")
    good = (shared_data / "imaging/nibabel_testdata/standard.nii.gz").read_bytes()
    (archive / "corrupt.nii.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageFileError, match="not a valid gzip stream"):
        convert_image_file("corrupt.nii.gz", archive, run, pseudonymizer, "nifti")
    raw = gzip.decompress(good)
    (archive / "short.nii").write_bytes(raw[: len(raw) - 40])
    with pytest.raises(ImageFileError, match=r"short\.nii: cannot read the nifti image"):
        convert_image_file("short.nii", archive, run, pseudonymizer, "nifti")
    assert not list((run / "volumes").glob("*.nii.gz")) if (run / "volumes").exists() else True

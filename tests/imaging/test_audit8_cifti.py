"""A CIFTI file (NIfTI-2 of grayordinates, e.g. HCP .dconn.nii / .dscalar.nii) is refused with a reason
that says what it is and how to get its volume part, not MONAI's "AttributeError: 'Cifti2Header' object
has no attribute 'get'" (found running medmm ingest on nibabel's test data)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel import cifti2
from nibabel.testing import data_path

from medmm.imaging.convert import convert_image_file
from medmm.imaging.errors import UnsupportedImageError
from medmm.pseudonym import Pseudonymizer


def _dscalar(path: Path) -> None:
    """A small dense-scalar CIFTI-2 file: 2 maps on 3 subcortical voxels."""
    axis0 = cifti2.ScalarAxis(["a", "b"])
    voxels = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    axis1 = cifti2.BrainModelAxis(
        name=["CIFTI_STRUCTURE_THALAMUS_LEFT"] * 3, voxel=voxels, affine=np.eye(4), volume_shape=(2, 2, 2)
    )
    header = cifti2.Cifti2Header.from_axes((axis0, axis1))
    img = cifti2.Cifti2Image(np.arange(6, dtype=np.float32).reshape(2, 3), header)
    img.nifti_header.set_intent("ConnDenseScalar")
    nib.save(img, path)


def test_cifti_refused_with_its_kind(tmp_path: Path) -> None:
    root, run = tmp_path / "a", tmp_path / "run"
    root.mkdir()
    shutil.copy(Path(data_path) / "row_major.dconn.nii", root / "conn.dconn.nii")
    _dscalar(root / "maps.dscalar.nii")
    (root / "maps.dscalar.nii.gz").write_bytes(gzip.compress((root / "maps.dscalar.nii").read_bytes()))
    pz = Pseudonymizer(b"k" * 32)
    cases = {
        "conn.dconn.nii": "NIFTI_INTENT_CONNECTIVITY_DENSE)",
        "maps.dscalar.nii": "NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS)",
        "maps.dscalar.nii.gz": "NIFTI_INTENT_CONNECTIVITY_DENSE_SCALARS)",
    }
    for rel, intent in cases.items():
        with pytest.raises(UnsupportedImageError) as info:
            convert_image_file(rel, root, run, pz, "nifti")
        text = str(info.value)
        assert text.startswith(f"{rel}: CIFTI file (NIfTI-2 with intent {intent}"), text
        assert "not a volume" in text and "wb_command -cifti-separate" in text and "Attribute" not in text


def test_plain_nifti2_still_converts(tmp_path: Path) -> None:
    root = tmp_path / "a"
    root.mkdir()
    nib.save(nib.Nifti2Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), root / "v.nii")
    rec = convert_image_file("v.nii", root, tmp_path / "run", Pseudonymizer(b"k" * 32), "nifti")
    assert rec.shape == [2, 3, 4]

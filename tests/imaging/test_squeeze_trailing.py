"""A 3D volume whose header declares dim[0]=4 (or 5) with 1-long trailing axes is written as 3D."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import convert_image_file
from medmm.imaging.convert import squeeze_trailing
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize(
    "rel", ["imaging/oro_nifti_analyze/avg152T1.hdr", "imaging/oro_nifti_analyze/avg152T1.hdr.gz"]
)
def test_analyze_dim0_4_is_3d(
    shared_data: Path, tmp_path: Path, pseudonymizer: Pseudonymizer, rel: str
) -> None:
    src = nib.load(shared_data / rel)
    assert src.header["dim"][0] == 4 and src.shape == (91, 109, 91, 1)  # the header's own claim
    rec = convert_image_file(rel, shared_data, tmp_path, pseudonymizer, "analyze")
    ours = nib.load(tmp_path / rec.path)
    assert rec.shape == [91, 109, 91] == list(ours.shape)
    assert int(ours.header["dim"][0]) == 3
    assert json.loads((tmp_path / rec.sidecar).read_text())["shape"] == [91, 109, 91]
    ref = nib.as_closest_canonical(nib.squeeze_image(src))
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.dataobj, dtype=np.float64), ref.get_fdata(), rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((4, 5, 6, 1), [4, 5, 6]),
        ((4, 5, 6, 1, 1), [4, 5, 6]),
        ((4, 5, 6, 2), [4, 5, 6, 2]),
        ((4, 5, 6, 1, 3), [4, 5, 6, 1, 3]),  # vector image: only *trailing* singletons go
        ((4, 5, 1), [4, 5, 1]),  # a single slice keeps its third axis
    ],
)
def test_nifti_trailing_singletons(
    tmp_path: Path, pseudonymizer: Pseudonymizer, shape: tuple[int, ...], expected: list[int]
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    data = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    affine = np.diag([-2.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), archive / "v.nii.gz")
    rec = convert_image_file("v.nii.gz", archive, tmp_path / "run", pseudonymizer, "nifti")
    ours = nib.load(tmp_path / "run" / rec.path)
    assert rec.shape == expected == list(ours.shape)
    ref = nib.as_closest_canonical(nib.squeeze_image(nib.load(archive / "v.nii.gz")))
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))
    np.testing.assert_allclose(ours.affine, ref.affine)


def test_squeeze_trailing_keeps_a_view() -> None:
    data = np.zeros((3, 4, 5, 1, 1), dtype=np.float32)
    out = squeeze_trailing(data)
    assert out.shape == (3, 4, 5) and np.shares_memory(out, data)
    plain = np.zeros((3, 4, 5))
    assert squeeze_trailing(plain) is plain

"""Volumes are standard .nii.gz files (ISA-L or zlib gzip) that read back exactly and deterministically."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging.volume_store import nifti_bytes, write_volume


def test_written_volume_reads_back_and_is_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(-1024, 3000, size=(7, 5, 4), dtype=np.int16)
    affine = np.diag([-0.5, 0.7, 2.0, 1.0])
    first = write_volume(tmp_path / "a", "v", data, affine, {})
    write_volume(tmp_path / "b", "v", data, affine, {})
    raw_a = (tmp_path / "a" / first.path).read_bytes()
    assert raw_a[:2] == b"\x1f\x8b"  # gzip
    assert raw_a == (tmp_path / "b" / first.path).read_bytes()  # zero timestamp: same bytes on re-runs
    img = nib.load(tmp_path / "a" / first.path)
    assert isinstance(img, nib.Nifti1Image)
    assert img.get_data_dtype() == np.int16
    # reoriented to RAS: x was flipped, world positions kept
    np.testing.assert_array_equal(np.asarray(img.dataobj), data[::-1])
    np.testing.assert_allclose(img.affine[:3, :3], np.diag([0.5, 0.7, 2.0]))


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]
)
@pytest.mark.parametrize("shape", [(5, 6, 7), (4, 5, 6, 3), (3, 4, 1)])
def test_nifti_bytes_equal_nibabel_to_bytes(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    data = (rng.normal(size=shape) * 100).astype(dtype)

    def canonical(affine: np.ndarray) -> nib.Nifti1Image:
        img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
        img.set_qform(img.affine, code=1)
        img.set_sform(img.affine, code=1)
        return img

    # flipped views after canonicalising (x; x and y; x, y and z), or none
    for affine in (
        np.diag([-2.0, 1.0, 3.0, 1.0]),
        np.diag([-2.0, -1.0, 3.0, 1.0]),
        np.diag([-1.0, -1.0, -1.0, 1.0]),
        np.eye(4),
    ):
        assert bytes(nifti_bytes(canonical(affine))) == canonical(affine).to_bytes()


def test_nifti_bytes_falls_back_to_nibabel_for_other_types() -> None:
    rgb = np.zeros((2, 3, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["G"] = 7
    img = nib.Nifti1Image(rgb, np.eye(4))
    assert bytes(nifti_bytes(img)) == nib.Nifti1Image(rgb, np.eye(4)).to_bytes()

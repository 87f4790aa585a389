"""Copies of the conversion fast path: pixels read straight into the stack, blocked RAS reorientation."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging import read_dicom_header
from medmm.imaging.pixels import native_fast_path, read_native_stack, read_slice
from medmm.imaging.volume_store import copy_to_fortran, nifti_bytes

TF = "imaging/pydicom_testfiles/test_files"


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_copy_to_fortran_equals_copyto_in_every_orientation(dtype: type) -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 200, (40, 41, 42)).astype(dtype)  # above the blocked-copy threshold
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            view = base[:: flips[0], :: flips[1], :: flips[2]].transpose(perm)
            dest = np.empty(view.shape, dtype=dtype, order="F")
            copy_to_fortran(dest, view)
            np.testing.assert_array_equal(dest, view, err_msg=f"{perm} {flips}")


def test_copy_to_fortran_other_inputs_fall_back() -> None:
    base = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    dest = np.empty((4, 3, 2), dtype=np.int16, order="F")
    copy_to_fortran(dest, base.T)  # small: plain copy
    np.testing.assert_array_equal(dest, base.T)
    wide = np.arange(40 * 41 * 42 * 2, dtype=np.int16).reshape(40, 41, 42, 2)[..., 0]  # no unit stride
    dest = np.empty(wide.T.shape, dtype=np.int16, order="F")
    copy_to_fortran(dest, wide.T)
    np.testing.assert_array_equal(dest, wide.T)


def test_sagittal_stack_written_like_nibabel() -> None:
    rng = np.random.default_rng(4)
    data = np.asfortranarray(rng.integers(0, 4000, (64, 48, 30)).astype(np.uint16))  # [col, row, slice]
    sagittal = np.array([[0, 0, -1.2, 10], [0.9, 0, 0, -5], [0, -0.9, 0, 7], [0, 0, 0, 1]])
    img = nib.as_closest_canonical(nib.Nifti1Image(data, sagittal))
    assert np.asanyarray(img.dataobj).strides[0] != data.itemsize  # a transposed view
    assert bytes(nifti_bytes(img)) == img.to_bytes()


@pytest.mark.parametrize("signed", [True, False])
def test_direct_read_masks_unused_high_bits(shared_data: Path, tmp_path: Path, signed: bool) -> None:
    """Without rescale the slices are read into the stack itself and their high bits masked there."""
    import pydicom

    ds = pydicom.dcmread(shared_data / TF / "CT_small.dcm")
    dtype = np.int16 if signed else np.uint16
    arr = ds.pixel_array.astype(dtype)
    arr[0, :4] = np.array([0x0FFF, 0x7000, 0x0800, 0x7123], dtype=dtype)  # bits above bit 12 in use
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "bits12.dcm")
    inst = read_dicom_header(tmp_path / "bits12.dcm", "bits12.dcm")
    assert inst.rescale_slope is None and native_fast_path([inst])
    stack = read_native_stack(tmp_path, [inst, inst])
    ref = read_slice(tmp_path / "bits12.dcm", inst)
    assert stack.dtype == ref.dtype
    for k in range(2):
        np.testing.assert_array_equal(stack[:, :, k], ref)
    assert (stack[:4, 0, 0] != arr[0, :4].astype(stack.dtype)).any()  # the high bits were really changed


def test_reused_nifti_buffer_never_leaks_into_the_next_volume(tmp_path: Path) -> None:
    """write_volume reuses one NIfTI buffer per thread: volumes of growing and shrinking sizes, in a row."""
    import gzip

    from medmm.imaging import volume_store

    rng = np.random.default_rng(5)
    sagittal = np.array([[0, 0, -1.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])
    for k, shape in enumerate([(30, 20, 10), (64, 48, 30), (8, 9, 10), (64, 48, 30), (5, 4, 3)]):
        data = np.asfortranarray(rng.integers(0, 4000, shape).astype(np.uint16))
        written = volume_store.write_volume(tmp_path, f"v{k}", data, sagittal, {})
        expected = nib.as_closest_canonical(nib.Nifti1Image(data, sagittal))
        expected.set_qform(expected.affine, code=1)
        expected.set_sform(expected.affine, code=1)
        expected.header.set_xyzt_units(xyz="mm")
        assert gzip.decompress((tmp_path / written.path).read_bytes()) == expected.to_bytes(), shape
    assert volume_store._LOCAL.buffer.nbytes >= 64 * 48 * 30 * 2  # the largest one's buffer, kept

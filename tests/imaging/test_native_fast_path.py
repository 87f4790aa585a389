"""The uncompressed fast path (bytes read at the scanned Pixel Data offset) equals MONAI's reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medmm.errors import InputError
from medmm.imaging import DicomInstance, read_dicom_header
from medmm.imaging.errors import TruncatedPixelDataError
from medmm.imaging.pixels import native_fast_path, read_native_stack, read_slice

TF = "imaging/pydicom_testfiles/test_files"


def _native_instances(root: Path) -> list[DicomInstance]:
    out = []
    for path in sorted((root / TF).glob("*.dcm")):
        rel = path.relative_to(root).as_posix()
        try:
            inst = read_dicom_header(path, rel)
        except InputError:
            continue
        if inst.kind.is_image and native_fast_path([inst]):
            out.append(inst)
    return out


def test_fast_path_equals_monai_reader(shared_data: Path) -> None:
    insts = _native_instances(shared_data)
    names = {Path(i.path).name for i in insts}
    # little/big endian, implicit VR, signed/unsigned, 8 and 16 bit, with and without rescale
    assert {"CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"} <= names
    assert len(insts) >= 6
    for inst in insts:
        fast = read_native_stack(shared_data, [inst])[:, :, 0]
        ref = read_slice(shared_data / inst.path, inst)
        # same type; the fast path returns native byte order (MONAI keeps big-endian input big-endian)
        assert fast.dtype == ref.dtype.newbyteorder("="), inst.path
        np.testing.assert_array_equal(fast, ref, err_msg=inst.path)


def test_fast_path_stack_order_and_truncation(shared_data: Path, tmp_path: Path) -> None:
    insts = [i for i in _native_instances(shared_data) if Path(i.path).name == "CT_small.dcm"]
    (inst,) = insts
    both = read_native_stack(shared_data, [inst, inst])
    assert both.shape == (128, 128, 2) and both.flags.f_contiguous
    np.testing.assert_array_equal(both[:, :, 0], both[:, :, 1])
    raw = (shared_data / inst.path).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[: int(inst.pixel_offset or 0) + 100])
    cut = inst.model_copy(update={"path": "cut.dcm"})
    with pytest.raises(TruncatedPixelDataError, match=r"cut\.dcm: pixel data is truncated"):
        read_native_stack(tmp_path, [cut])


def test_compressed_and_colour_are_not_fast(shared_data: Path) -> None:
    for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_small_odd.dcm"):
        inst = read_dicom_header(shared_data / TF / name, name)
        assert inst.pixel_offset is None or not native_fast_path([inst]), name


@pytest.mark.parametrize("signed", [True, False])
def test_unused_high_bits_like_pydicom(shared_data: Path, tmp_path: Path, signed: bool) -> None:
    import pydicom

    ds = pydicom.dcmread(shared_data / TF / "CT_small.dcm")
    dtype = np.int16 if signed else np.uint16
    arr = ds.pixel_array.astype(dtype)
    arr[0, :4] = np.array([0x0FFF, 0x7000, 0x0800, 0x7123], dtype=dtype)  # bits above bit 12 in use
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "bits12.dcm")
    inst = read_dicom_header(tmp_path / "bits12.dcm", "bits12.dcm")
    assert inst.bits_stored == 12 and native_fast_path([inst])
    fast = read_native_stack(tmp_path, [inst])[:, :, 0]
    np.testing.assert_array_equal(fast, read_slice(tmp_path / "bits12.dcm", inst))

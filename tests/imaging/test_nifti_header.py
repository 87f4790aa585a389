"""The NIfTI header and RAS reorientation computed without nibabel equal nibabel's, byte for byte."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medmm.imaging._nifti_header import VOX_OFFSET, canonical_volume
from medmm.imaging.kinds import _sop_name, _uid_names
from medmm.imaging.volume_store import nifti_bytes, write_volume

DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.deg2rad(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _nibabel(data: np.ndarray, affine: np.ndarray) -> tuple[nib.Nifti1Image, bytes]:
    """What write_volume did with nibabel (and still does outside plain 3D volumes)."""
    img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    return img, bytes(nifti_bytes(img))


# every axis order and flip (48), straight, slightly and strongly oblique, and sheared
CASES = [
    (perm, flips, degrees, shear)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product([1, -1], repeat=3)
    for degrees, shear in ((0.0, 0.0), (3.0, 0.0), (44.9, 0.0), (20.0, 0.05))
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_header_data_and_geometry_equal_nibabel(case: int) -> None:
    perm, flips, degrees, shear = CASES[case]
    rng = np.random.default_rng(case)
    turn = np.zeros((3, 3))
    for i, j in enumerate(perm):
        turn[j, i] = flips[i]
    m = _rotation(rng, degrees) @ turn @ np.diag(rng.uniform(0.3, 3.0, 3))
    m[0, 1] += shear
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = m, rng.uniform(-200, 200, 3)
    data = rng.uniform(0, 100, tuple(rng.integers(2, 9, 3))).astype(DTYPES[case % len(DTYPES)])

    img, expected = _nibabel(data, affine)
    canon = canonical_volume(data, affine)

    assert canon is not None
    assert canon.header == expected[:VOX_OFFSET]
    assert canon.data.shape == img.shape and np.array_equal(canon.data, np.asanyarray(img.dataobj))
    assert np.array_equal(canon.affine, img.affine)
    assert canon.zooms == tuple(float(z) for z in img.header.get_zooms()[:3])
    assert canon.orientation == "".join(nib.aff2axcodes(img.affine))


@pytest.mark.parametrize("dtype", DTYPES)
def test_written_file_equals_the_nibabel_path(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(7)
    data = (rng.normal(size=(40, 50, 36)) * 100).astype(dtype)  # above the blocked-copy size
    affine = np.array([[0, 0, -1.1, 90], [0.9, 0, 0, -120], [0, -0.9, 0, 100], [0, 0, 0, 1.0]])
    written = write_volume(tmp_path, "v", data, affine, {"k": 1})
    img, expected = _nibabel(data, affine)
    import gzip

    assert gzip.decompress((tmp_path / written.path).read_bytes()) == expected
    assert written.orientation == "RAS" and written.shape == list(img.shape)
    assert written.affine == [[float(v) for v in row] for row in img.affine]


@pytest.mark.parametrize(
    ("shape", "dtype", "affine"),
    [
        ((3, 4, 5, 2), np.int16, np.eye(4)),  # 4D
        ((3, 4), np.int16, np.eye(4)),  # 2D
        ((3, 4, 5), np.int64, np.eye(4)),  # a type nibabel handles itself
        ((3, 4, 5), np.dtype(">i2"), np.eye(4)),  # big-endian
        ((3, 4, 5), np.int16, np.diag([1.0, 1.0, 0.0, 1.0])),  # a degenerate axis
        ((3, 4, 5), np.int16, np.full((4, 4), np.nan)),
    ],
)
def test_anything_else_is_left_to_nibabel(shape: tuple[int, ...], dtype: type, affine: np.ndarray) -> None:
    assert canonical_volume(np.zeros(shape, dtype), affine) is None


def test_sop_class_names_equal_pydicoms_without_importing_it() -> None:
    from pydicom.uid import UID

    def pydicoms(uid: str) -> str:  # what kinds._sop_name computed with pydicom
        name = UID(uid).name if uid else ""
        return name if name and name != uid else (f"SOP class {uid}" if uid else "no SOP Class UID")

    uids = [*_uid_names(), "", "1.2.3", "1.2.840.10008.5.1.4.1.1.4 ", "1.2.840.10008.5.1.4.1.1.77.1.6"]
    assert len(uids) > 400
    with _no_check():
        assert [_sop_name(u) for u in uids] == [pydicoms(u) for u in uids]
    assert _sop_name("1.2.840.10008.5.1.4.1.1.4") == "MR Image Storage"


class _no_check:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")  # pydicom warns about a UID with padding

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def test_plain_dicom_series_is_scanned_and_converted_without_pydicom_or_nibabel(
    shared_data: Path, tmp_path: Path
) -> None:
    from medmm.ingest.sample import replicate_series

    template = sorted((shared_data / "imaging/dicom2nifti_series/siemens/anatomical/001").glob("*.dcm"))
    replicate_series(template, tmp_path / "archive" / "s0", 12, seed=3)
    key = tmp_path / "site.key"
    key.write_text("5a" * 32 + "\n")
    key.chmod(0o600)
    code = (
        "import sys; from medmm.ingest.pipeline import ingest_archive; "
        f"r = ingest_archive({str(tmp_path / 'archive')!r}, {str(tmp_path / 'run')!r}, workers=1, "
        f"processes=False, key_file={str(key)!r}, show_progress=False); "
        "print(r.counts, 'pydicom' in sys.modules, 'nibabel' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("}")[-1].split() == ["False", "False"], done.stdout
    assert "'ingested': 12" in done.stdout
    img = nib.load(next((tmp_path / "run" / "volumes").glob("*.nii.gz")))
    assert 12 in img.shape and "".join(nib.aff2axcodes(img.affine)) == "RAS"


@pytest.mark.parametrize("shape", [(3, 4, 1), (1, 4, 5), (5, 1, 3), (1, 1, 1)])
def test_single_voxel_axes_equal_nibabel(shape: tuple[int, int, int]) -> None:
    data = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    affine = np.array([[0, 0, -1.1, 9], [0.9, 0, 0, -12], [0, -0.9, 0, 10], [0, 0, 0, 1.0]])
    img, expected = _nibabel(data, affine)
    canon = canonical_volume(data, affine)
    assert canon is not None and canon.header == expected[:VOX_OFFSET]
    assert canon.data.shape == img.shape and np.array_equal(canon.data, np.asanyarray(img.dataobj))

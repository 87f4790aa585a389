"""The NIfTI-1 header nibabel writes for a 3D volume made canonical (RAS+), computed without nibabel.

``write_volume`` used to build a ``nibabel.Nifti1Image``, call ``as_closest_canonical`` and set the
qform and sform (code 1) from the reoriented affine. Importing nibabel costs ~0.09 s of CPU (its
``nifti1`` module imports pydicom, with pydicom's pixel handlers, PIL and ``requests``), on the
critical path of every ``medmm ingest`` run (the worker server imports it before it forks the
workers), and its image and header objects ~1.4 ms per volume. This module repeats the same numpy
operations in the same order (nibabel 5's ``io_orientation``, ``apply_orientation``,
``inv_ornt_aff``, ``Nifti1Header.set_qform``/``set_sform``, ``quaternions.mat2quat``, ``aff2axcodes``;
nibabel is MIT-licensed), so the header bytes, the reoriented array and the geometry are the ones
nibabel gives: tested byte for byte against nibabel over every axis order and flip, oblique and
sheared affines and every plain voxel type (``tests/imaging/test_nifti_header.py``). Anything else
(4D data, other voxel types, a degenerate affine) returns ``None`` and goes through nibabel.

>>> import numpy as np
>>> data = np.zeros((2, 3, 4), np.int16)
>>> canon = canonical_volume(data, np.diag([-1.0, 2.0, 3.0, 1.0]))
>>> canon.orientation, canon.data.shape, len(canon.header)
('RAS', (2, 3, 4), 352)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.linalg as npl

__all__ = ["CanonicalVolume", "canonical_volume"]

#: numpy voxel type -> (NIfTI datatype code, bits per voxel) written here (nibabel's codes)
_TYPES: dict[np.dtype, tuple[int, int]] = {
    np.dtype(np.uint8): (2, 8),
    np.dtype(np.int16): (4, 16),
    np.dtype(np.int32): (8, 32),
    np.dtype(np.float32): (16, 32),
    np.dtype(np.float64): (64, 64),
    np.dtype(np.int8): (256, 8),
    np.dtype(np.uint16): (512, 16),
    np.dtype(np.uint32): (768, 32),
}

_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
#: the single-file NIfTI-1 header (348 bytes) and the 4 zero bytes of "no extension" that follow
#: ``xyzt_units``: spatial unit millimetre (NIFTI_UNITS_MM), time unit unknown, as
#: ``Nifti1Header.set_xyzt_units(xyz="mm")`` sets it (DICOM positions and spacings are in mm).
_UNITS_MM = 2
_HEADER = struct.Struct("<i10s18sihsB8h3fhhhh8ffffhBBffffii80s24shh3f3f4f4f4f16s4s")
VOX_OFFSET = 352


@dataclass(frozen=True)
class CanonicalVolume:
    """A volume reoriented to RAS+ as ``nibabel.as_closest_canonical`` does, with its header bytes."""

    data: np.ndarray  # a view of the input (flips and a transpose)
    affine: np.ndarray  # the voxel -> RAS affine nibabel's image holds (float32-rounded sform)
    header: bytes  # 352 bytes: header + empty extension flag; the voxels follow at VOX_OFFSET
    zooms: tuple[float, float, float]
    orientation: str


def canonical_volume(data: np.ndarray, affine: np.ndarray) -> CanonicalVolume | None:
    """``data`` (3D, voxel -> RAS mm ``affine``) made canonical with the NIfTI-1 header nibabel writes.

    The same as ``img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))`` followed by
    ``img.set_qform(img.affine, code=1)``, ``img.set_sform(img.affine, code=1)``, unit slope and zero
    intercept; ``None`` for what is not handled here (then use nibabel).

    >>> canonical_volume(np.zeros((2, 2), np.int16), np.eye(4)) is None  # 2D: nibabel
    True
    """
    dtype = data.dtype
    if data.ndim != 3 or dtype not in _TYPES or not dtype.isnative:
        return None
    a = np.array(affine, dtype=np.float64, copy=True)  # what nibabel's image keeps
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        return None
    ornt = _io_orientation(a)
    if ornt is None:
        return None
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        arr, b = data, a
    else:
        arr = _apply_orientation(data, ornt)
        b = a.dot(_inv_ornt_aff(ornt, data.shape))
    q = _qform(b)
    if q is None:
        return None
    qfac, zooms, quat = q
    srow = b[:3].astype(np.float32)  # the sform nibabel stores; its image's affine is read back from it
    best = np.eye(4)
    best[0:3, :] = srow
    axes = _io_orientation(best)
    if axes is None:  # pragma: no cover - best is b rounded to float32, which passed above
        return None
    code, bitpix = _TYPES[dtype]
    shape = arr.shape
    pixdim = np.ones(8, dtype=np.float32)
    pixdim[0] = qfac
    pixdim[1:4] = zooms
    trans = b[:3, 3].astype(np.float32)
    header = _HEADER.pack(
        348, b"", b"", 0, 0, b"", 0,
        *[3, shape[0], shape[1], shape[2], 1, 1, 1, 1],
        0.0, 0.0, 0.0, 0, code, bitpix, 0,
        *pixdim.tolist(),
        float(VOX_OFFSET), 1.0, 0.0, 0, 0, _UNITS_MM,
        0.0, 0.0, 0.0, 0.0, 0, 0,
        b"", b"", 1, 1,
        *quat.astype(np.float32).tolist(),
        *trans.tolist(),
        *srow[0].tolist(), *srow[1].tolist(), *srow[2].tolist(),
        b"", b"n+1\x00",
    )  # fmt: skip
    return CanonicalVolume(
        data=arr,
        affine=best,
        header=header + b"\x00" * 4,
        zooms=tuple(float(z) for z in pixdim[1:4]),  # type: ignore[arg-type]
        orientation="".join(_axcodes(axes)),
    )


def _io_orientation(affine: np.ndarray) -> np.ndarray | None:
    """nibabel's ``io_orientation`` (3 x 2: output axis, direction per input axis); ``None`` when an
    axis is dropped (a degenerate affine)."""
    rzs = affine[:3, :3]
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    zooms[zooms == 0] = 1
    rs = rzs / zooms
    p, s, qs = npl.svd(rs, full_matrices=False)
    tol = s.max() * max(rs.shape) * np.finfo(s.dtype).eps
    keep = s > tol
    r = np.dot(p[:, keep], qs[keep])
    ornt = np.ones((3, 2), dtype=np.int8) * np.nan
    in_axes = np.argsort(np.min(-(r**2), axis=0), kind="stable")
    for in_ax in in_axes:
        col = r[:, in_ax]
        if not np.allclose(col, 0):
            out_ax = np.argmax(np.abs(col))
            ornt[in_ax, 0] = out_ax
            ornt[in_ax, 1] = -1 if col[out_ax] < 0 else 1
            r[out_ax, :] = 0
    return None if np.any(np.isnan(ornt)) else ornt


def _apply_orientation(arr: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """nibabel's ``apply_orientation``: flips, then the transpose (a view)."""
    t_arr = arr
    for ax, flip in enumerate(ornt[:, 1]):
        if flip == -1:
            t_arr = np.flip(t_arr, axis=ax)
    full_transpose = np.arange(t_arr.ndim)
    full_transpose[:3] = np.argsort(ornt[:, 0])
    return t_arr.transpose(full_transpose)


def _inv_ornt_aff(ornt: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """nibabel's ``inv_ornt_aff``."""
    p = ornt.shape[0]
    dims = np.array(shape)[:p]
    axis_transpose = [int(v) for v in ornt[:, 0]]
    undo_reorder = np.eye(p + 1)[[*axis_transpose, p], :]
    undo_flip = np.diag([*ornt[:, 1].tolist(), 1.0])
    center_trans = -(dims - 1) / 2.0
    undo_flip[:p, p] = (ornt[:, 1] * center_trans) - center_trans
    return np.dot(undo_flip, undo_reorder)


def _qform(affine: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(qfac, zooms, quaternion b, c, d) as ``Nifti1Header.set_qform`` computes them; ``None`` where
    nibabel would divide by a zero zoom or fail to decompose."""
    rzs = affine[:3, :3]
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    if not np.all(zooms > 0):
        return None
    r = rzs / zooms
    if npl.det(r) > 0:
        qfac = 1
    else:
        qfac = -1
        r[:, -1] *= -1
    try:
        p, _s, qs = npl.svd(r)
    except np.linalg.LinAlgError:  # pragma: no cover - nibabel raises; let it
        return None
    quat = _mat2quat(np.dot(p, qs))
    return qfac, zooms, quat[1:]


def _mat2quat(m: np.ndarray) -> np.ndarray:
    """nibabel's ``quaternions.mat2quat`` (w, x, y, z)."""
    qxx, qyx, qzx, qxy, qyy, qzy, qxz, qyz, qzz = m.flat
    k = (
        np.array(
            [
                [qxx - qyy - qzz, 0, 0, 0],
                [qyx + qxy, qyy - qxx - qzz, 0, 0],
                [qzx + qxz, qzy + qyz, qzz - qxx - qyy, 0],
                [qyz - qzy, qzx - qxz, qxy - qyx, qxx + qyy + qzz],
            ]
        )
        / 3.0
    )
    vals, vecs = np.linalg.eigh(k)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    if q[0] < 0:
        q *= -1
    return q


def _axcodes(ornt: np.ndarray) -> list[str]:
    """nibabel's ``ornt2axcodes`` with the RAS labels."""
    codes = []
    for axno, direction in ornt:
        codes.append(_LABELS[int(np.round(axno))][1 if direction == 1 else 0])
    return codes

"""Write a canonical (RAS) volume and its JSON sidecar atomically under the run directory.

The array is reoriented to the closest canonical orientation (RAS+) as nibabel does it (a plain 3D
volume without importing nibabel: :mod:`medmm.imaging._nifti_header`), written as
``volumes/<volume_id>.nii.gz`` via a temporary file + rename, and described by a sidecar of
non-identifying acquisition metadata (``volumes/<volume_id>.json``).

Compression: nibabel serialises the NIfTI in memory (one volume, so memory stays bounded by one
series) and the bytes are gzipped at level 1 with ISA-L (the ``isal`` package: about 6x faster than zlib
level 1 here, and slightly smaller), falling back to the standard library's zlib at level 1 (nibabel's
own level) when ``isal`` is not installed. Either way the file is a standard ``.nii.gz`` with a zero
gzip timestamp, so re-running writes identical bytes.

>>> import tempfile, pathlib, numpy as np
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> flipped = np.diag([-2.0, 1.0, 1.0, 1.0])  # x runs right-to-left (LAS)
>>> w = write_volume(run, "vol-1", np.arange(8, dtype=np.int16).reshape(2, 2, 2), flipped, {})
>>> w.shape, w.orientation, w.affine[0][0]
([2, 2, 2], 'RAS', 2.0)
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging._nifti_header import VOX_OFFSET, CanonicalVolume, canonical_volume

__all__ = [
    "WrittenVolume",
    "canonical_dtype",
    "copy_to_fortran",
    "gzip_bytes",
    "nifti_bytes",
    "sidecar_text",
    "write_volume",
]


@dataclass
class WrittenVolume:
    """Where a volume went and its canonical geometry."""

    path: str  # relative to the run directory
    sidecar: str
    shape: list[int]
    spacing: list[float]
    affine: list[list[float]]
    orientation: str
    dtype: str


def canonical_dtype(data: np.ndarray) -> np.ndarray:
    """Store integer-valued float data (e.g. CT after an integer rescale) as the smallest fitting int.

    >>> canonical_dtype(np.array([-1024.0, 3071.0], dtype=np.float32)).dtype
    dtype('int16')
    """
    if data.dtype.kind != "f" or data.size == 0 or not np.all(np.isfinite(data)):
        return data
    if not np.array_equal(data, np.round(data)):
        return data
    lo, hi = float(data.min()), float(data.max())
    for dtype in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return data.astype(dtype)
    return data


def gzip_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as one gzip member at level 1 (ISA-L when installed, else zlib), timestamp 0.

    >>> gzip.decompress(gzip_bytes(b"abc" * 1000)) == b"abc" * 1000
    True
    """
    try:
        from isal import igzip
    except ImportError:
        return gzip.compress(data, compresslevel=1, mtime=0)
    return igzip.compress(data, compresslevel=1, mtime=0)


#: voxel types written by :func:`nifti_bytes` itself (nibabel stores them unscaled, as they are)
_PLAIN_DTYPES = frozenset(
    np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64)
)


def nifti_bytes(img: Any, scratch: np.ndarray | None = None) -> bytes | memoryview:
    """The single-file NIfTI-1 bytes of ``img``, the same bytes as ``img.to_bytes()``.

    nibabel writes the voxels in many small chunks (one ``tobytes`` copy and one buffer write each),
    which costs more than compressing them. For unscaled plain voxel types this writes nibabel's header
    (with the unit slope and zero intercept nibabel itself stores for them) and copies the array once,
    in Fortran order, into the output buffer; other types go through nibabel. Byte equality with
    ``to_bytes`` is tested for every plain type, flipped (canonicalised) views and 4D arrays.
    With ``scratch`` (a uint8 array) the bytes are written into its start when they fit: the result
    is a view of ``scratch``, valid until it is written again.

    >>> import nibabel as nib
    >>> img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    >>> bytes(nifti_bytes(img)) == img.to_bytes()
    True
    """
    import io

    data = np.asanyarray(img.dataobj)
    img.update_header()
    hdr = img.header.copy()
    if data.dtype not in _PLAIN_DTYPES or hdr.get_data_dtype() != data.dtype:
        return img.to_bytes()
    hdr.set_slope_inter(1.0, 0.0)  # what nibabel's array writer records for unscaled data
    head = io.BytesIO()
    hdr.write_to(head)
    offset = int(hdr.get_data_offset())
    if len(head.getvalue()) > offset:
        return img.to_bytes()
    # np.empty, not bytearray: every byte is written below, so the buffer need not be zeroed first
    size = offset + data.nbytes
    out = scratch[:size] if scratch is not None and scratch.nbytes >= size else np.empty(size, np.uint8)
    header = head.getvalue()
    out[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    out[len(header) : offset] = 0  # nibabel pads the header (and extensions) with zeros up to vox_offset
    view: np.ndarray = np.ndarray(
        data.shape, dtype=hdr.get_data_dtype(), buffer=out, offset=offset, order="F"
    )
    copy_to_fortran(view, data)
    return out.data


#: below this many voxels a reoriented copy is cheap whatever its order
_BLOCKED_MIN = 1 << 16


def copy_to_fortran(dest: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dest, src)`` for a Fortran-ordered 3D ``dest``, fast when ``src`` is a transposed view.

    numpy's copy walks ``dest`` in memory order, so when the axis that is contiguous in ``src`` is not
    ``dest``'s first axis (a sagittal or coronal stack reoriented to RAS) each voxel read lands on another
    page. Then the copy goes plane by plane: each plane (``dest``'s first axis by ``src``'s contiguous
    axis) is first gathered into a small C-ordered buffer along ``src``'s contiguous axis and then
    copied from there, both walks staying within a few pages. The values are those of ``np.copyto``.

    >>> src = np.arange(24, dtype=np.int16).reshape(2, 3, 4).transpose(2, 1, 0)[::-1]
    >>> dest = np.empty(src.shape, dtype=np.int16, order="F")
    >>> copy_to_fortran(dest, src)
    >>> bool(np.array_equal(dest, src))
    True
    """
    if (
        dest.ndim != 3
        or src.shape != dest.shape
        or src.dtype != dest.dtype
        or src.size < _BLOCKED_MIN
        or not dest.flags.f_contiguous
    ):
        np.copyto(dest, src)
        return
    inner = min(range(3), key=lambda a: (abs(src.strides[a]), a))
    if inner == 0 or abs(src.strides[inner]) != src.itemsize:
        np.copyto(dest, src)  # already walks src in memory order, or src has no contiguous axis
        return
    outer = 3 - inner  # the remaining axis (neither 0 nor inner)
    d_planes, s_planes = np.moveaxis(dest, outer, 0), np.moveaxis(src, outer, 0)
    buf = np.empty((dest.shape[0], dest.shape[inner]), dtype=dest.dtype)  # C order: inner contiguous
    if src.strides[inner] < 0:
        buf = buf[:, ::-1]  # runs the way src does: the gather is a forward memory copy
    for d_plane, s_plane in zip(d_planes, s_planes, strict=True):
        np.copyto(buf, s_plane)
        np.copyto(d_plane, buf)


#: one reused NIfTI buffer per thread, for volumes up to this size: a fresh 10-100 MB buffer per volume
#: costs a page fault per 4 KB written (the kernel zero-fills every page), ~10% of a conversion
_SCRATCH_MAX = 64 << 20
_LOCAL = threading.local()


def _scratch(img: Any) -> np.ndarray | None:
    """This thread's NIfTI buffer, grown to fit ``img`` (``None`` for a volume above _SCRATCH_MAX)."""
    return _scratch_for(4096 + int(np.prod(img.shape, dtype=np.int64)) * img.get_data_dtype().itemsize)


def _scratch_for(need: int) -> np.ndarray | None:
    """This thread's NIfTI buffer of at least ``need`` bytes (``None`` above _SCRATCH_MAX)."""
    if need > _SCRATCH_MAX:
        return None
    buf: np.ndarray | None = getattr(_LOCAL, "buffer", None)
    if buf is None or buf.nbytes < need:
        buf = _LOCAL.buffer = np.empty(need, dtype=np.uint8)
    return buf


def _replace_with(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: a temporary file (mode 0600) in the same folder, renamed over it.

    Like the journal parts, volumes and sidecars are not fsynced: a re-run after a crash redoes any
    volume whose journal part is missing, and an fsync per file costs the worker milliseconds of wall time.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_volume(
    run_dir: Path,
    volume_id: str,
    data: np.ndarray,
    affine_ras: np.ndarray,
    sidecar: dict[str, Any],
    *,
    orientation: str = "RAS",
    reorient: bool = True,
    xyz_units: str = "mm",
) -> WrittenVolume:
    """Reorient ``data`` (voxel -> RAS mm ``affine_ras``) to RAS+ and write NIfTI + sidecar atomically.

    Parameters
    ----------
    run_dir
        The run directory; files go to ``run_dir/volumes/``.
    volume_id
        File stem (a pseudonymous id).
    data
        3D (or 4D: extra axes after the three spatial ones) array.
    affine_ras
        4x4 voxel -> RAS+ world affine.
    sidecar
        Non-identifying metadata to store next to the volume; geometry keys are filled in here.
    orientation
        Label stored in the record (``"RAS"``; ``"none"`` for images without patient geometry).
    reorient
        False keeps the voxel order (images without patient geometry).
    xyz_units
        NIfTI spatial unit: ``"mm"``, or ``"unknown"`` for pictures whose pixel spacing is unknown
        (the volume is then written through nibabel, which sets it).
    """
    out_dir = Path(run_dir) / "volumes"
    if xyz_units not in ("mm", "unknown"):
        raise ValueError(f"write_volume: xyz_units must be 'mm' or 'unknown', not {xyz_units!r}")
    plain = reorient and xyz_units == "mm"
    canon = canonical_volume(np.asarray(data), np.asarray(affine_ras, dtype=float)) if plain else None
    if canon is not None:  # a plain 3D volume: nibabel's header and reorientation without nibabel
        final = out_dir / f"{volume_id}.nii.gz"
        geometry: dict[str, Any] = {
            "shape": [int(s) for s in canon.data.shape],
            "spacing": list(canon.zooms),
            "orientation": canon.orientation,
            "affine": [[float(v) for v in row] for row in canon.affine],
            "dtype": str(canon.data.dtype),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        _replace_with(final, gzip_bytes(_nifti_of(canon)))
    else:
        final, geometry = _write_with_nibabel(
            out_dir, volume_id, data, affine_ras, orientation, reorient, xyz_units
        )
    side = out_dir / f"{volume_id}.json"
    text = sidecar_text({**sidecar, **geometry})
    _replace_with(side, text.encode("utf-8"))  # the text tables.atomic_write_json writes
    return WrittenVolume(path=f"volumes/{final.name}", sidecar=f"volumes/{side.name}", **geometry)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities (Python or numpy floats, in dicts, lists, tuples) as ``None``."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def sidecar_text(sidecar: dict[str, Any]) -> str:
    """The JSON text of a sidecar, as :func:`medmm.tables.atomic_write_json` writes it: indented, keys
    sorted, other values through ``str``, and NaN / infinity as ``null`` (bare ``NaN`` is not JSON:
    ``jq``, browsers and strict parsers reject it).

    >>> json.loads(sidecar_text({"rescale_slope": float("nan"), "spacing": [np.float32(0.5)]}))
    {'rescale_slope': None, 'spacing': [0.5]}
    """
    return json.dumps(_finite(sidecar), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"


def _nifti_of(canon: CanonicalVolume) -> memoryview:
    """The single-file NIfTI bytes of ``canon`` in this thread's buffer (as :func:`nifti_bytes`)."""
    data = canon.data
    size = VOX_OFFSET + data.nbytes
    scratch = _scratch_for(4096 + data.nbytes)  # the size _scratch asks for: one buffer for both paths
    out = scratch[:size] if scratch is not None else np.empty(size, np.uint8)
    out[:VOX_OFFSET] = np.frombuffer(canon.header, dtype=np.uint8)
    view: np.ndarray = np.ndarray(data.shape, dtype=data.dtype, buffer=out, offset=VOX_OFFSET, order="F")
    copy_to_fortran(view, data)
    return out.data


def _write_with_nibabel(
    out_dir: Path,
    volume_id: str,
    data: np.ndarray,
    affine_ras: np.ndarray,
    orientation: str,
    reorient: bool,
    xyz_units: str = "mm",
) -> tuple[Path, dict[str, Any]]:
    """The volume through nibabel (4D, other voxel types, no reorientation): file and geometry."""
    import nibabel as nib

    array = np.asarray(data)
    wide = array.dtype.kind in "iu" and array.dtype.itemsize == 8  # nibabel wants 64-bit ints named
    img = nib.Nifti1Image(array, np.asarray(affine_ras, dtype=float), dtype=array.dtype if wide else None)
    if reorient:
        img = nib.as_closest_canonical(img)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units(xyz=xyz_units)  # millimetres, unless the spacing is unknown (pictures)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{volume_id}.nii.gz"
    _replace_with(final, gzip_bytes(nifti_bytes(img, _scratch(img))))
    geometry: dict[str, Any] = {
        "shape": [int(s) for s in img.shape],
        "spacing": [float(z) for z in img.header.get_zooms()[:3]],
        "orientation": "".join(nib.aff2axcodes(img.affine)) if reorient else orientation,
        "affine": [[float(v) for v in row] for row in img.affine],
        "dtype": str(img.get_data_dtype()),
    }
    return final, geometry

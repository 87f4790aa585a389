"""Copy a NIfTI volume with its free-text header fields and header extensions blanked.

medmm writes its canonical volumes with nibabel's fresh header (``descrip``, ``aux_file``,
``intent_name`` empty, no extensions), but a share does not rely on that: the copy gets those fields
(and NIfTI-1's legacy ``data_type`` / ``db_name`` strings) zeroed and any extension bytes zeroed with
the extension flag cleared. The voxels and every numeric field are copied byte for byte.

>>> import gzip, tempfile, pathlib, numpy as np, nibabel as nib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
>>> img.header["descrip"] = b"DOE^JOHN 1970"
>>> nib.save(img, d / "a.nii.gz")
>>> copy_nifti_blanked(d / "a.nii.gz", d / "b.nii.gz")
['descrip']
>>> nib.load(d / "b.nii.gz").header["descrip"].item()
b''
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["copy_nifti_blanked", "nifti_text_fields"]

#: (field, offset, length) of the free-text fields, per header size (NIfTI-1: 348, NIfTI-2: 540).
_TEXT_FIELDS: dict[int, tuple[tuple[str, int, int], ...]] = {
    348: (
        ("data_type", 4, 10),
        ("db_name", 14, 18),
        ("descrip", 148, 80),
        ("aux_file", 228, 24),
        ("intent_name", 328, 16),
    ),
    540: (("descrip", 240, 80), ("aux_file", 320, 24), ("intent_name", 508, 16)),
}


class NiftiHeaderError(ValueError):
    """The file does not start with a NIfTI-1 or NIfTI-2 header."""


def _open(path: Path, mode: str) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, mode)  # type: ignore[return-value]
    return open(path, mode)  # type: ignore[return-value]


def _header_size(head: bytes) -> tuple[int, str]:
    for order in ("<", ">"):
        size = struct.unpack(f"{order}i", head[:4])[0]
        if size in _TEXT_FIELDS:
            return size, order
    raise NiftiHeaderError("not a NIfTI-1/2 header (sizeof_hdr is neither 348 nor 540)")


def _read_head(fh: BinaryIO) -> tuple[bytearray, int]:
    """The header, its extension flag and any extension bytes up to the voxel offset."""
    head = bytearray(fh.read(4))
    size, order = _header_size(bytes(head))
    head += fh.read(size)  # the rest of the header (size - 4 bytes) and the 4-byte extension flag
    if size == 348:
        vox_offset = int(struct.unpack(f"{order}f", head[108:112])[0])
    else:
        vox_offset = int(struct.unpack(f"{order}q", head[168:176])[0])
    if vox_offset > len(head):  # extensions (or padding) before the voxels
        head += fh.read(vox_offset - len(head))
    return head, size


def nifti_text_fields(path: Path) -> dict[str, bytes]:
    """The free-text header fields of a NIfTI file and its extension bytes (``extensions``), raw.

    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nii"
    >>> nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), p)
    >>> nifti_text_fields(p)["descrip"].strip(b"\\x00")
    b''
    """
    with _open(Path(path), "rb") as fh:
        head, size = _read_head(fh)
    out = {name: bytes(head[off : off + n]) for name, off, n in _TEXT_FIELDS[size]}
    out["extensions"] = bytes(head[size + 4 :]) if head[size] else b""
    return out


def copy_nifti_blanked(src: Path, dst: Path) -> list[str]:
    """Copy ``src`` to ``dst`` with the text fields and extensions zeroed; returns the fields that held
    something (``extensions`` for extension bytes)."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _open(src, "rb") as fin:
        head, size = _read_head(fin)
        blanked = []
        for name, off, n in _TEXT_FIELDS[size]:
            if any(head[off : off + n]):
                blanked.append(name)
                head[off : off + n] = bytes(n)
        if head[size] or any(head[size + 4 :]):
            blanked.append("extensions")
            head[size : size + 4] = bytes(4)
            head[size + 4 :] = bytes(len(head) - size - 4)
        with _open(dst, "wb") as fout:
            fout.write(bytes(head))
            shutil.copyfileobj(fin, fout, 1 << 20)
    return blanked

"""A NIfTI / ANALYZE input file checked and its voxel array made ready for the canonical volume.

:func:`~medmm.imaging.convert.convert_image_file` reads the file with MONAI's ``NibabelReader``; before
that, :func:`check_image_file` finds both members of a ``.hdr``/``.img`` pair and checks that each is
present, non-empty and (gzip) complete, and :func:`refuse_cifti` refuses CIFTI files (data on
grayordinates, no volume); after it, :func:`squeeze_trailing` and :func:`narrow_int64` give the array
the shape and type a NIfTI tool expects, and :func:`no_orientation` tells a header without qform and
sform.

>>> squeeze_trailing(np.zeros((4, 5, 6, 1))).shape, narrow_int64(np.array([1, 2])).dtype
((4, 5, 6), dtype('int16'))
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import ImageFileError, MissingCompanionError, UnsupportedImageError

__all__ = ["check_image_file", "narrow_int64", "no_orientation", "refuse_cifti", "squeeze_trailing"]


def _companion(path: Path) -> tuple[Path, Path]:
    """(header, image) of an ANALYZE / NIfTI pair from either member."""
    name = path.name
    for hdr_ext, img_ext in ((".hdr.gz", ".img.gz"), (".hdr", ".img")):
        if name.lower().endswith(hdr_ext):
            return path, path.with_name(name[: -len(hdr_ext)] + img_ext)
        if name.lower().endswith(img_ext):
            return path.with_name(name[: -len(img_ext)] + hdr_ext), path
    return path, path


def check_image_file(rel_path: str, path: Path) -> Path:
    """Validate presence / companion / gzip integrity; returns the file to hand to the reader."""
    header, image = _companion(path)
    if header != image:
        for member, other in ((header, image), (image, header)):
            if not member.exists():
                raise MissingCompanionError(
                    rel_path,
                    f"{other.name} has no companion {member.name} (ANALYZE/NIfTI pairs need both files)",
                    f"copy {member.name} next to {other.name}",
                )
        path = header
    if not path.exists():
        raise ImageFileError(rel_path, "file does not exist", "check the path")
    for member in {header, image}:
        if member.stat().st_size == 0:
            raise ImageFileError(rel_path, f"{member.name} is empty (0 bytes)", "re-export the image")
        if member.name.lower().endswith(".gz"):
            try:
                with gzip.open(member, "rb") as fh:
                    while fh.read(1 << 20):
                        pass
            except (OSError, EOFError, zlib.error) as exc:
                raise ImageFileError(
                    rel_path,
                    f"{member.name} is not a valid gzip stream ({exc})",
                    "the file is corrupt or truncated; copy it again from the source",
                ) from exc
    return path


def squeeze_trailing(data: np.ndarray) -> np.ndarray:
    """``data`` without the length-1 axes that trail its third axis, as :func:`nibabel.squeeze_image` does.

    ANALYZE and NIfTI headers often declare ``dim[0] = 4`` with ``dim[4] = 1`` for a plain 3D volume
    (e.g. ``avg152T1.hdr``): a user expects a 3D volume, not ``[x, y, z, 1]``. Only trailing axes after
    the third are dropped, so ``[x, y, z, 1, 3]`` (a vector image) and 2D images keep their shape.

    >>> squeeze_trailing(np.zeros((91, 109, 91, 1))).shape
    (91, 109, 91)
    >>> squeeze_trailing(np.zeros((4, 5, 6, 1, 3))).shape
    (4, 5, 6, 1, 3)
    """
    shape = data.shape
    n = len(shape)
    while n > 3 and shape[n - 1] == 1:
        n -= 1
    return data if n == len(shape) else data.reshape(shape[:n])


def narrow_int64(data: np.ndarray) -> np.ndarray:
    """64-bit integer voxels (label maps saved from numpy) as the smallest of int16, uint16, int32, uint32.

    NIfTI tools read 64-bit integers poorly and nibabel refuses to write them without an explicit
    dtype; values beyond 32 bits keep their 64-bit type (the writer then names it explicitly).

    >>> narrow_int64(np.array([0, 3, 300], dtype=np.int64)).dtype
    dtype('int16')
    >>> narrow_int64(np.array([0, 2**40], dtype=np.int64)).dtype
    dtype('int64')
    """
    if data.size == 0:
        return data.astype(np.int16)
    lo, hi = int(data.min()), int(data.max())
    for dtype in (np.int16, np.uint16, np.int32, np.uint32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return data.astype(dtype)
    return data


def no_orientation(img: Any) -> bool:
    """True for a NIfTI image whose header sets neither a qform nor an sform (method 1 of the standard)."""
    header = getattr(img, "header", None)
    try:
        return int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return False


def refuse_cifti(path: Path, rel_path: str) -> None:
    """Raise UnsupportedImageError for a CIFTI file: a NIfTI-2 header whose intent code is one of the
    connectivity codes (3000-3099), holding data on grayordinates, not a volume.

    Without this, MONAI's reader fails on its header with ``AttributeError: 'Cifti2Header' object has
    no attribute 'get'``, which tells the user nothing.
    """
    from nibabel.nifti1 import intent_codes

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(540)
    except (OSError, EOFError, zlib.error):
        return  # unreadable: the reader's own error says so
    for endian in "<>":
        if len(head) == 540 and int.from_bytes(head[:4], "little" if endian == "<" else "big") == 540:
            code = int.from_bytes(head[504:508], "little" if endian == "<" else "big", signed=True)
            if 3000 <= code <= 3099:
                name = intent_codes.niistring[code] if code in intent_codes.niistring else str(code)
                raise UnsupportedImageError(
                    rel_path,
                    f"CIFTI file (NIfTI-2 with intent {name}): data on grayordinates (surface vertices and "
                    "subcortical voxels), not a volume",
                    "read it with nibabel.cifti2 or Connectome Workbench; `wb_command -cifti-separate IN "
                    "COLUMN -volume-all OUT.nii` writes its subcortical part as a NIfTI volume medmm reads",
                )

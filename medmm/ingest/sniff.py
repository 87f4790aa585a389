"""Recognise an input file's format from its first few KB (never its extension, never pixel data).

:func:`sniff_bytes` is pure (bytes in, :class:`Sniffed` out); :func:`sniff_file` reads the head of a file
(through gzip when the file is gzip-compressed) and calls it.

>>> sniff_bytes(b"\\0" * 128 + b"DICM" + b"\\2\\0\\1\\0OB").format
'dicom'
>>> sniff_bytes(b"").format
'empty'
>>> sniff_bytes(b"hello, world\\n").format
'text'
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = [
    "HEAD_BYTES",
    "IMAGING_FORMATS",
    "RASTER_FORMATS",
    "Format",
    "Sniffed",
    "sniff_bytes",
    "sniff_file",
    "sniff_head",
]

#: How much of a file discovery reads (uncompressed head, also through gzip).
HEAD_BYTES = 4096


class Format(StrEnum):
    """Formats discovery can tell apart. ``.gz`` suffix: the same inside gzip."""

    dicom = "dicom"
    nifti1 = "nifti1"  # single file (.nii)
    nifti2 = "nifti2"
    nifti1_pair = "nifti1-pair"  # header of a .hdr/.img pair
    nifti2_pair = "nifti2-pair"
    analyze = "analyze"  # ANALYZE 7.5 .hdr (348 bytes, no NIfTI magic)
    image_data = "image-data"  # the .img of a .hdr/.img pair (raw voxels, no signature)
    minc1 = "minc1"
    minc2 = "minc2"  # HDF5
    mgh = "mgh"
    parrec = "parrec"
    nrrd = "nrrd"
    ecat = "ecat"
    afni = "afni"
    png = "png"
    jpeg = "jpeg"
    tiff = "tiff"
    jpeg2000 = "jpeg2000"  # JP2 container (.jp2) or bare codestream (.j2k/.j2c)
    zip = "zip"
    pdf = "pdf"
    icc = "icc"
    text = "text"
    empty = "empty"
    gzip = "gzip"  # gzip whose content is none of the above (or unreadable)
    unknown = "unknown"


#: 2D picture exports (chest X-ray JPEG/PNG ...): one-slice volumes without spacing (medmm.imaging.raster).
RASTER_FORMATS = frozenset({Format.png, Format.jpeg, Format.tiff, Format.jpeg2000})
#: Formats medmm ingest turns into volumes.
IMAGING_FORMATS = (
    frozenset(
        {Format.dicom, Format.nifti1, Format.nifti2, Format.nifti1_pair, Format.nifti2_pair, Format.analyze}
    )
    | RASTER_FORMATS
)
#: Image formats that are recognised but not converted by this stage (quarantined with a fix).
OTHER_IMAGE_FORMATS = frozenset(
    {Format.minc1, Format.minc2, Format.mgh, Format.parrec, Format.nrrd, Format.ecat, Format.afni}
)
#: Valid files that are not images at all (status ``non_image``).
NON_IMAGE_FORMATS = frozenset({Format.text, Format.pdf, Format.icc})

#: the JPEG 2000 signature box (ISO 15444-1 I.5.1) that opens every JP2 / JPX file
_JP2_SIGNATURE = b"\0\0\0\x0cjP  \r\n\x87\n"

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
    b"".split()
)


@dataclass(frozen=True)
class Sniffed:
    """What the head of a file says it is.

    Attributes
    ----------
    format
        A :class:`Format` value (``"nifti1"``), or ``"<format>.gz"`` when gzip-compressed.
    note
        Human detail for reasons (``"explicit VR big endian, no preamble"``); never PHI.
    error
        Set when the head could not be read (corrupt gzip, permission denied ...).
    """

    format: str
    note: str = ""
    error: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", str(self.format))  # plain str, also when given a Format

    @property
    def base(self) -> Format:
        """The format without the ``.gz`` suffix."""
        return Format(self.format.removesuffix(".gz"))

    @property
    def gzipped(self) -> bool:
        """Whether the file is gzip-compressed."""
        return self.format.endswith(".gz")


def _dicom_without_preamble(head: bytes) -> str:
    """Describe a plausible first data element at offset 0 (group 0002/0008), else ``""``."""
    if len(head) < 8:
        return ""
    for endian, name in (("<", "little"), (">", "big")):
        group, elem = struct.unpack(f"{endian}HH", head[:4])
        if group not in (0x0002, 0x0008) or elem > 0x0100:
            continue
        if head[4:6] in _VRS:
            return f"explicit VR {name} endian, no preamble"
        (length,) = struct.unpack(f"{endian}I", head[4:8])
        if length < 0x10000 and (length % 2 == 0 or group == 0x0002):
            return f"implicit VR {name} endian, no preamble"
    return ""


def _nifti_or_analyze(head: bytes) -> Sniffed | None:
    if len(head) < 348:
        return None
    for endian in ("<", ">"):
        (size,) = struct.unpack(f"{endian}i", head[:4])
        if size == 348:
            magic = head[344:348]
            if magic == b"n+1\0":
                return Sniffed(Format.nifti1, f"{'little' if endian == '<' else 'big'} endian")
            if magic == b"ni1\0":
                return Sniffed(Format.nifti1_pair, f"{'little' if endian == '<' else 'big'} endian")
            (dim0,) = struct.unpack(f"{endian}h", head[40:42])
            if 1 <= dim0 <= 7:
                return Sniffed(
                    Format.analyze, f"{'little' if endian == '<' else 'big'} endian, dim[0]={dim0}"
                )
        if size == 540 and len(head) >= 12:
            magic = head[4:12]
            if magic == b"n+2\0\r\n\x1a\n":
                return Sniffed(Format.nifti2, f"{'little' if endian == '<' else 'big'} endian")
            if magic == b"ni2\0\r\n\x1a\n":
                return Sniffed(Format.nifti2_pair, f"{'little' if endian == '<' else 'big'} endian")
    return None


def _is_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte char cut at the end of the head is fine
        if exc.start < len(head) - 4:
            try:
                head.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
                return False
            printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in head)
            return printable > 0.95 * len(head)
    return True


def sniff_bytes(head: bytes) -> Sniffed:
    """Recognise a format from the first bytes of an (uncompressed) file.

    Parameters
    ----------
    head
        The first :data:`HEAD_BYTES` of the file (fewer when the file is shorter).

    >>> import struct
    >>> hdr = struct.pack("<i", 348) + b"\\0" * 340 + b"n+1\\0"
    >>> sniff_bytes(hdr).format
    'nifti1'
    """
    if not head:
        return Sniffed(Format.empty)
    if head[128:132] == b"DICM":
        return Sniffed(Format.dicom, "Part 10 file with preamble")
    found = _nifti_or_analyze(head)
    if found is not None:
        return found
    note = _dicom_without_preamble(head)
    if note:
        return Sniffed(Format.dicom, note)
    if head[:2] == b"\x1f\x8b":
        return Sniffed(Format.gzip)
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return Sniffed(Format.minc2, "HDF5 container")
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02"):
        return Sniffed(Format.minc1, "netCDF container")
    if head[:7] == b"NRRD000":
        return Sniffed(Format.nrrd)
    if head[:6] == b"MATRIX":
        return Sniffed(Format.ecat)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return Sniffed(Format.png)
    if head[:3] == b"\xff\xd8\xff":
        return Sniffed(Format.jpeg)
    if head[:4] in (b"II*\0", b"MM\0*"):
        return Sniffed(Format.tiff)
    if head[:4] in (b"II+\0", b"MM\0+"):  # BigTIFF (64-bit offsets), which Pillow reads
        return Sniffed(Format.tiff, "BigTIFF")
    if head[:12] == _JP2_SIGNATURE:
        return Sniffed(Format.jpeg2000, "JP2 container")
    if head[:4] == b"\xff\x4f\xff\x51":  # SOC marker, then SIZ: a bare JPEG 2000 codestream
        return Sniffed(Format.jpeg2000, "JPEG 2000 codestream")
    if head[:4] == b"PK\x03\x04":
        return Sniffed(Format.zip)
    if head[:5] == b"%PDF-":
        return Sniffed(Format.pdf)
    if head[36:40] == b"acsp":
        return Sniffed(Format.icc, "ICC colour profile")
    if len(head) >= 284 and head[:4] == b"\0\0\0\x01" and struct.unpack(">i", head[20:24])[0] in (0, 1, 3, 4):
        return Sniffed(Format.mgh)
    if _is_text(head):
        if head.startswith(b"# === DATA DESCRIPTION FILE"):
            return Sniffed(Format.parrec, "Philips PAR header")
        if b"name = DATASET_RANK" in head or b"name = BYTEORDER_STRING" in head or b"type = " in head[:64]:
            return Sniffed(Format.afni, "AFNI .HEAD")
        return Sniffed(Format.text)
    return Sniffed(Format.unknown)


def _gunzip_head(data: bytes, limit: int) -> bytes:
    """Decompress the start of a gzip stream; raises ``zlib.error``/``EOFError`` when corrupt."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decomp.decompress(data, limit)
    if not out and not decomp.eof and len(data) >= 64:
        raise EOFError("no data could be decompressed")
    return out


def sniff_file(path: Path, *, chunk: int = HEAD_BYTES) -> Sniffed:
    """Sniff a file from its first ``chunk`` bytes (its decompressed head when gzip-compressed).

    Raises ``OSError`` when the file cannot be opened or read (e.g. permission denied).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "notes.dcm"
    >>> _ = p.write_text("not a DICOM file")
    >>> sniff_file(p).format
    'text'
    """
    with open(path, "rb") as fh:
        head = fh.read(chunk)
    return sniff_head(head, chunk)


def sniff_head(head: bytes, chunk: int = HEAD_BYTES) -> Sniffed:
    """What :func:`sniff_file` finds from a file's first ``chunk`` bytes, ``head``.

    >>> sniff_head(b"\\0" * 128 + b"DICM").format
    'dicom'
    """
    found = sniff_bytes(head)
    if found.format != Format.gzip:
        return found
    try:
        inner = _gunzip_head(head, chunk)
    except (zlib.error, EOFError) as exc:
        return Sniffed(Format.gzip, "corrupt gzip stream", error=f"corrupt gzip stream ({exc})")
    if not inner:
        return Sniffed(
            Format.gzip, "gzip stream too short to inspect", error="truncated gzip stream (no data)"
        )
    inner_found = sniff_bytes(inner)
    if inner_found.format in (Format.gzip, Format.unknown, Format.empty):
        return Sniffed(Format.gzip, f"gzip of {inner_found.format} content")
    return Sniffed(f"{inner_found.format}.gz", inner_found.note)

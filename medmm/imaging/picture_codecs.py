"""Pictures Pillow cannot decode exactly: JPEG 2000, and JPEG beyond 8-bit samples (12/16-bit, JPEG-LS).

Pillow's JPEG 2000 reader scales 9- to 15-bit samples up to 16 bits (a 12-bit 4095 comes out as 65520)
and reads signed samples as unsigned; its JPEG reader decodes 8-bit samples only and does not know
JPEG-LS (it calls such files "cannot identify", which is not damage). These pictures are decoded here
by the pylibjpeg plugins that pydicom uses for the same codestreams inside DICOM: pylibjpeg-openjpeg
(JPEG 2000) and pylibjpeg-libjpeg (12/16-bit and lossless JPEG, JPEG-LS). Both return the stored
sample values exactly, signed or not.

libjpeg decodes a cut-off stream without complaint (it fills in what is missing) and OpenJPEG's
message for one says nothing about truncation, so the stream's structure is checked first:
:func:`j2k_problem` follows a JPEG 2000 codestream's tile-parts to its end-of-codestream marker and
:func:`jpeg_problem` follows a JPEG stream's marker segments and entropy-coded data to its EOI.

>>> jpeg_problem(b"\\xff\\xd8\\xff\\xc1\\x00\\x0b\\x0c\\x00\\x02\\x00\\x02\\x01\\x01\\x11\\x00")
'the stream ends inside a marker segment or scan, before its end-of-image marker (FFD9)'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medmm.imaging.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError

__all__ = [
    "PILLOW_JPEG_SOFS",
    "ExactPicture",
    "J2kInfo",
    "JpegFrame",
    "exact_channels",
    "j2k_codestream",
    "j2k_info",
    "j2k_problem",
    "jpeg_frame",
    "jpeg_problem",
    "read_exact_jpeg",
    "read_jpeg2000",
]

#: SOF markers Pillow's JPEG reader accepts (it decodes them only with 8-bit samples)
PILLOW_JPEG_SOFS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: every start-of-frame marker: the ISO 10918-1 processes and JPEG-LS (SOF55 = F7, SOF57 = F9)
_SOFS = PILLOW_JPEG_SOFS | {0xF7, 0xF9}
_PROCESS = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC9: "extended sequential, arithmetic",
    0xCA: "progressive, arithmetic",
    0xCB: "lossless, arithmetic",
    0xF7: "JPEG-LS",
    0xF9: "JPEG-LS extended",
}
#: markers without a length field (SOI, EOI, RSTn, TEM)
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class JpegFrame:
    """What a JPEG stream's start-of-frame segment declares.

    >>> JpegFrame(0xC1, 12, 1024, 256, 1).describe()
    '12-bit JPEG (extended sequential)'
    """

    marker: int
    precision: int
    rows: int
    columns: int
    components: int

    @property
    def pillow_decodes(self) -> bool:
        """Whether Pillow decodes this frame (8-bit samples of a process it knows)."""
        return self.marker in PILLOW_JPEG_SOFS and self.precision == 8

    def describe(self) -> str:
        """``"12-bit JPEG (extended sequential)"``, ``"16-bit JPEG-LS"`` ..."""
        process = _PROCESS.get(self.marker, f"SOF marker FF{self.marker:02X}")
        if self.marker in (0xF7, 0xF9):
            return f"{self.precision}-bit {process}"
        return f"{self.precision}-bit JPEG ({process})"


def jpeg_frame(path: Path) -> JpegFrame | None:
    """The first start-of-frame of a JPEG file, found by skipping marker segments (no pixel data read).

    ``None`` when the file is not a JPEG stream or ends (or goes wrong) before a frame header.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.jpg"
    >>> _ = p.write_bytes(b"\\xff\\xd8\\xff\\xc1\\x00\\x0b\\x0c\\x04\\x00\\x01\\x00\\x01\\x01\\x11\\x00")
    >>> jpeg_frame(p)
    JpegFrame(marker=193, precision=12, rows=1024, columns=256, components=1)
    """
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return None
        while True:
            head = fh.read(2)
            while head[:1] == b"\xff" and head[1:2] == b"\xff":  # fill bytes before a marker
                head = head[1:] + fh.read(1)
            if len(head) < 2 or head[0] != 0xFF:
                return None
            marker = head[1]
            if marker in _STANDALONE:
                if marker == 0xD9:
                    return None
                continue
            raw = fh.read(2)
            if len(raw) < 2:
                return None
            (length,) = struct.unpack(">H", raw)
            if marker in _SOFS:
                body = fh.read(6)
                if len(body) < 6 or length < 8:
                    return None
                precision, rows, cols, comps = struct.unpack(">BHHB", body)
                return JpegFrame(marker, precision, rows, cols, comps)
            if marker == 0xDA or length < 2:  # a scan before any frame header: not a JPEG picture
                return None
            fh.seek(length - 2, 1)


def jpeg_problem(data: bytes) -> str:
    """Why a JPEG (or JPEG-LS) stream is incomplete, or ``""`` when it reaches its EOI marker.

    Marker segments are skipped by their lengths; entropy-coded data is scanned for the next marker
    (``FF`` followed by a byte of ``C0`` or above that is not a restart marker, which holds for JPEG's
    byte stuffing (``FF00``) and JPEG-LS's bit stuffing alike).

    >>> jpeg_problem(b"\\xff\\xd8\\xff\\xd9"), jpeg_problem(b"PNG")
    ('', 'it does not start with the JPEG start-of-image marker (FFD8)')
    """
    if data[:2] != b"\xff\xd8":
        return "it does not start with the JPEG start-of-image marker (FFD8)"
    end = "the stream ends inside a marker segment or scan, before its end-of-image marker (FFD9)"
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1
        if pos + 2 > n:
            return end
        if data[pos] != 0xFF:
            return f"no marker where one should be (byte {pos}): the stream is damaged"
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:
            return ""
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            return end
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > n:
            return end
        pos += length
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data up to the next marker that is not a restart
            nxt = data.find(b"\xff", pos)
            if nxt < 0 or nxt + 1 >= n:
                return end
            follower = data[nxt + 1]
            if follower >= 0xC0 and not 0xD0 <= follower <= 0xD7:
                pos = nxt
                break
            pos = nxt + 1


@dataclass(frozen=True)
class J2kInfo:
    """What a JPEG 2000 codestream's SIZ segment declares (component 0's sample format).

    >>> J2kInfo(512, 512, 1, 12, False, True).describe()
    '12-bit unsigned JPEG 2000'
    """

    rows: int
    columns: int
    components: int
    precision: int
    signed: bool
    uniform: bool  # every component has the same precision, sign and no subsampling

    def describe(self) -> str:
        """``"12-bit unsigned JPEG 2000"``."""
        return f"{self.precision}-bit {'signed' if self.signed else 'unsigned'} JPEG 2000"


def j2k_codestream(data: bytes) -> tuple[bytes, str]:
    """(the JPEG 2000 codestream of a JP2 file or bare codestream, problem or ``""``).

    A JP2 file is a sequence of boxes (ISO 15444-1 annex I); the codestream is the content of its
    ``jp2c`` box. A box longer than the file means the file was cut off.

    >>> j2k_codestream(b"\\xff\\x4f\\xff\\x51")[0][:2]
    b'\\xffO'
    >>> j2k_codestream(b"\\0\\0\\0\\x0cjP  \\r\\n\\x87\\n\\0\\0\\x01\\0jp2c")[1]
    'the jp2c box declares 248 bytes but the file holds 0: the file is truncated'
    """
    if data[:4] == b"\xff\x4f\xff\x51":
        return data, ""
    pos, n = 0, len(data)
    while pos + 8 <= n:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        start = pos + 8
        if length == 1:  # 64-bit XLBox
            if pos + 16 > n:
                break
            (length,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            start = pos + 16
        elif length == 0:  # the box runs to the end of the file
            length = n - pos
        if length < start - pos:
            return b"", f"a JP2 box ({kind!r}) has an impossible length {length}: the file is damaged"
        if pos + length > n:
            if kind == b"jp2c":
                return b"", (
                    f"the jp2c box declares {length - (start - pos)} bytes but the file holds "
                    f"{n - start}: the file is truncated"
                )
            return (
                b"",
                f"a JP2 box ({kind.decode('latin-1')!r}) runs past the end of the file: it is truncated",
            )
        if kind == b"jp2c":
            return data[start : pos + length], ""
        pos += length
    return b"", "the JP2 file has no codestream (jp2c) box: it is truncated or not a JPEG 2000 picture"


def j2k_info(code: bytes) -> J2kInfo:
    """Picture size and sample format from a codestream's SIZ segment (ISO 15444-1 A.5.1).

    >>> siz = struct.pack(">HHHHIIIIIIIIH", 0xFF4F, 0xFF51, 41, 0, 4, 3, 0, 0, 4, 3, 0, 0, 1)
    >>> j2k_info(siz + bytes([0x8B, 1, 1]))
    J2kInfo(rows=3, columns=4, components=1, precision=12, signed=True, uniform=True)
    """
    if len(code) < 42 or code[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("no SIZ segment after the start-of-codestream marker")
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", code[8:24])
    (csiz,) = struct.unpack(">H", code[40:42])
    comps = [code[42 + 3 * k : 45 + 3 * k] for k in range(csiz)]
    if csiz == 0 or len(comps[-1]) < 3:
        raise ValueError("the SIZ segment is cut off")
    first = comps[0]
    uniform = all(c[0] == first[0] and c[1] == 1 and c[2] == 1 for c in comps)
    return J2kInfo(ysiz - yo, xsiz - xo, csiz, (first[0] & 0x7F) + 1, bool(first[0] & 0x80), uniform)


def j2k_problem(code: bytes) -> str:
    """Why a JPEG 2000 codestream is incomplete, or ``""`` when its tile-parts reach the EOC marker.

    Main-header marker segments are skipped by their lengths up to the first SOT; each tile-part's
    Psot gives where the next SOT (or the final EOC, ``FFD9``) must be. A Psot of 0 (last tile-part,
    length not written) must be followed by EOC at the end of the codestream.

    >>> sot = b"\\xff\\x90\\x00\\x0a\\x00\\x00\\x00\\x00\\x00\\x0e\\x00\\x01"  # a 14-byte tile-part
    >>> j2k_problem(b"\\xff\\x4f\\xff\\x51\\x00\\x02" + sot)[:54]
    'the codestream ends inside a tile-part, before its EOC'
    >>> j2k_problem(b"\\xff\\x4f\\xff\\x51\\x00\\x02" + sot + b"\\0\\0\\xff\\xd9")
    ''
    """
    cut = (
        "the codestream ends inside a tile-part, before its EOC (end-of-codestream, FFD9) marker: "
        "the file is truncated"
    )
    n = len(code)
    if code[:2] != b"\xff\x4f":
        return "the codestream does not start with the SOC marker (FF4F): the file is damaged"
    pos = 2
    while True:  # main header
        if pos + 4 > n:
            return "the codestream ends inside its main header: the file is truncated"
        marker, length = struct.unpack(">HH", code[pos : pos + 4])
        if marker == 0xFF90:
            break
        if marker >> 8 != 0xFF or length < 2:
            return f"no marker where one should be (byte {pos} of the codestream): the file is damaged"
        pos += 2 + length
    while True:  # tile-parts
        if pos + 2 > n:
            return cut
        (marker,) = struct.unpack(">H", code[pos : pos + 2])
        if marker == 0xFFD9:
            return ""
        if marker != 0xFF90:
            return f"no tile-part (SOT) or EOC marker at byte {pos} of the codestream: the file is damaged"
        if pos + 10 > n:
            return cut
        (psot,) = struct.unpack(">I", code[pos + 6 : pos + 10])
        if psot == 0:
            return "" if code.rstrip(b"\0")[-2:] == b"\xff\xd9" else cut  # a pad byte may follow EOC
        if psot < 14:
            return f"a tile-part declares an impossible length {psot}: the file is damaged"
        pos += psot


def exact_channels(arr: np.ndarray, precision: int, notes: list[str]) -> tuple[np.ndarray, str]:
    """Grey pixels from decoded samples ``[row, column(, channel)]`` of any bit depth, as raster does.

    One channel is kept as is; grey + alpha keeps the grey; colour whose R, G, B are equal keeps their
    common value; other colour gets Pillow's ``convert("L")`` luma (``(19595 R + 38470 G + 7471 B +
    32768) >> 16``, ITU-R 601-2) computed at the samples' own bit depth, with a note. An alpha channel
    that is not fully opaque (``2**precision - 1``) adds a note.

    >>> exact_channels(np.full((2, 2, 3), 4000, np.uint16), 12, [])[0].tolist()
    [[4000, 4000], [4000, 4000]]
    """
    if arr.ndim == 2:
        return arr, "stored as grayscale"
    channels = arr.shape[-1]
    if channels in (2, 4) and arr.size and int(arr[..., -1].min()) < (1 << precision) - 1:
        notes.append("alpha channel dropped: transparent pixels keep their stored grey value")
    if channels <= 2:
        return np.ascontiguousarray(arr[..., 0]), "grayscale with alpha: grey channel kept"
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return np.ascontiguousarray(r), "identical R, G, B channels: their common value kept"
    notes.append("colour picture converted to grayscale (ITU-R 601-2 luma, as Pillow convert('L'))")
    wide = arr[..., :3].astype(np.int64)
    luma = (wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 32768) >> 16
    return luma.astype(arr.dtype), "ITU-R 601-2 luma (Pillow's convert('L') weights)"


@dataclass(frozen=True)
class ExactPicture:
    """Samples decoded by a pylibjpeg plugin, as stored: ``[row, column(, channel)]``.

    ``mode`` describes the samples (``"1 x 12-bit unsigned"``), ``decoder`` names the plugin.
    """

    samples: np.ndarray
    precision: int
    mode: str
    decoder: str


def _corrupt(rel: str, what: str, problem: str) -> CorruptImageError:
    return CorruptImageError(
        rel,
        f"cannot decode the {what} picture: {problem}",
        "copy the file again from the source (or re-export it); a partial copy cannot be repaired",
    )


def _check_size(rel: str, what: str, rows: int, columns: int) -> None:
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and rows * columns > 2 * limit:
        raise ImageTooLargeError(
            rel,
            f"{what} picture declares {rows * columns} pixels ({columns} x {rows}), more than Pillow's "
            f"decompression-bomb limit of {2 * limit} that medmm applies to every picture",
            "if it is a genuine picture (not a damaged header), downsample or tile it before ingest; "
            "whole-slide scans need a slide reader (e.g. OpenSlide), not medmm ingest",
        )


def read_jpeg2000(path: Path, rel: str) -> ExactPicture | None:
    """Decode a JP2 file or J2K codestream exactly; ``None`` for 8-bit colour, which Pillow decodes.

    The structure is checked first (:func:`j2k_codestream`, :func:`j2k_problem`), so a cut-off file
    is reported as truncated. Grey (and grey + alpha) pictures of any bit depth and colour deeper than
    8 bits are decoded by pylibjpeg-openjpeg, keeping the stored values and their sign; 8-bit colour is
    left to Pillow (``None``), which also converts sYCC to RGB.

    Raises
    ------
    CorruptImageError
        Truncated or damaged file.
    ImageTooLargeError
        Declared size above the decompression-bomb limit.
    UnsupportedImageError
        Components of different bit depths or subsampled, colour spaces other than RGB deeper than 8
        bits, or pylibjpeg-openjpeg not installed.

    >>> import tempfile, openjpeg
    >>> p = Path(tempfile.mkdtemp()) / "x.jp2"
    >>> grey12 = np.arange(0, 4096, 4, dtype=np.uint16).reshape(32, 32)  # 12-bit samples
    >>> _ = p.write_bytes(openjpeg.encode(grey12, bits_stored=12, codec_format=1))  # a JP2 file
    >>> pic = read_jpeg2000(p, "x.jp2")
    >>> pic.samples[-1, -3:].tolist(), pic.mode  # Pillow would give 65472 for 4092
    ([4084, 4088, 4092], '1 x 12-bit unsigned')
    """
    what = "JPEG 2000"
    with open(path, "rb") as fh:
        data = fh.read()
    code, problem = j2k_codestream(data)
    if problem:
        raise _corrupt(rel, what, problem)
    try:
        info = j2k_info(code)
    except ValueError as exc:
        raise _corrupt(rel, what, f"{exc}: the file is damaged") from exc
    problem = j2k_problem(code)
    if problem:
        raise _corrupt(rel, what, problem)
    _check_size(rel, what, info.rows, info.columns)
    if info.components >= 3 and info.precision == 8 and not info.signed:
        return None
    if not info.uniform:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture with {info.components} components of different bit depths or "
            "subsampled components, which medmm does not turn into grey values exactly",
            "re-export it as 8- or 16-bit grayscale (JPEG 2000, PNG or TIFF)",
        )
    try:
        import openjpeg
    except ImportError as exc:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture: decoding it exactly needs pylibjpeg-openjpeg, which is not "
            "installed (Pillow rescales JPEG 2000 samples of 9 to 15 bits and reads signed ones as unsigned)",
            "pip install pylibjpeg-openjpeg (part of medmm[imaging]) and re-run",
        ) from exc
    try:
        if info.components >= 3:
            space = str(openjpeg.get_parameters(data).get("colourspace", ""))
            if space not in ("unknown", "unspecified", "sRGB"):
                raise UnsupportedImageError(
                    rel,
                    f"{info.describe()} picture in colour space {space} with more than 8 bits per sample, "
                    "which medmm does not convert to grey",
                    "re-export it as 16-bit grayscale (JPEG 2000, PNG or TIFF) or 8-bit RGB",
                )
        samples = np.asarray(openjpeg.decode(data))
    except UnsupportedImageError:
        raise
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise UnsupportedImageError(
            rel,
            f"{info.describe()} picture whose codestream is complete but that OpenJPEG cannot decode "
            f"({type(exc).__name__}: {' '.join(str(exc).split())})",
            "re-export it (JPEG 2000 part 1, or 16-bit grayscale PNG/TIFF); if another copy decodes, "
            "copy the file again",
        ) from exc
    sign = "signed" if info.signed else "unsigned"
    return ExactPicture(
        samples, info.precision, f"{info.components} x {info.precision}-bit {sign}", "pylibjpeg-openjpeg"
    )


def read_exact_jpeg(path: Path, rel: str, frame: JpegFrame) -> ExactPicture:
    """Decode a JPEG that Pillow cannot (12/16-bit samples, JPEG-LS ...) with pylibjpeg-libjpeg.

    Only grayscale pictures are decoded (X-ray and CT exports); the stream must reach its EOI marker
    (:func:`jpeg_problem`), because libjpeg fills in what a cut-off stream lacks.

    Raises
    ------
    CorruptImageError
        Truncated or damaged stream.
    ImageTooLargeError
        Declared size above the decompression-bomb limit.
    UnsupportedImageError
        pylibjpeg-libjpeg not installed, several colour components, or a stream libjpeg refuses: the
        reason says which decoders were tried and why neither reads it.
    """
    what = frame.describe()
    with open(path, "rb") as fh:
        data = fh.read()
    problem = jpeg_problem(data)
    if problem:
        raise _corrupt(rel, what, problem)
    _check_size(rel, what, frame.rows, frame.columns)
    if frame.components != 1:
        raise UnsupportedImageError(
            rel,
            f"{what} picture with {frame.components} colour components: Pillow cannot decode it, and medmm "
            "decodes JPEG beyond Pillow's (12/16-bit, lossless beyond 8 bits, JPEG-LS) in grayscale only",
            "re-export it as 16-bit grayscale PNG or TIFF (or 8-bit colour JPEG)",
        )
    try:
        import libjpeg
    except ImportError as exc:
        raise UnsupportedImageError(
            rel,
            f"{what} picture: Pillow decodes only 8-bit JPEG, and pylibjpeg-libjpeg, which decodes "
            "this one, is not installed",
            "pip install pylibjpeg-libjpeg (part of medmm[imaging]) and re-run",
        ) from exc
    try:
        samples = np.asarray(libjpeg.decode(data))
    except (RuntimeError, ValueError, MemoryError) as exc:
        raise UnsupportedImageError(
            rel,
            f"{what} picture that the installed decoders cannot read: Pillow decodes only 8-bit JPEG and "
            f"pylibjpeg-libjpeg rejects this stream ({' '.join(str(exc).split())}); the stream is "
            "complete (it reaches its end-of-image marker), so it is not a cut-off copy",
            "re-export it from its source as 16-bit grayscale PNG or TIFF; for a stream taken out of a DICOM "
            "file, decompress the DICOM file itself with dcmtk's `dcmdjpeg IN OUT` or GDCM's "
            "`gdcmconv --raw IN OUT` (both decode such streams) and ingest that",
        ) from exc
    return ExactPicture(samples, frame.precision, f"1 x {frame.precision}-bit unsigned", "pylibjpeg-libjpeg")

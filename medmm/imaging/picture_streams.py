"""Structure of picture files, read without decoding pixels: JPEG / JPEG-LS and JPEG 2000 streams, TIFF IFDs.

Used to tell a cut-off or damaged stream from one a decoder refuses (libjpeg decodes a cut-off stream
without an error, filling in what is missing; OpenJPEG's message for one says nothing about why), to
route a picture to the decoder that keeps its values (:mod:`medmm.imaging.picture_codecs`) and to name
a TIFF layout Pillow cannot decode. Only sizes, bit depths and marker positions are read: no tag or box
text, so no metadata that could identify a patient.

>>> jpeg_problem(b"\\xff\\xd8\\xff\\xc1\\x00\\x0b\\x0c\\x00\\x02\\x00\\x02\\x01\\x01\\x11\\x00")
'the stream ends inside a marker segment or scan, before its end-of-image marker (FFD9)'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "J2K_START",
    "JP2_SIGNATURE",
    "PILLOW_JPEG_SOFS",
    "J2kInfo",
    "JpegFrame",
    "TiffLayout",
    "j2k_codestream",
    "j2k_info",
    "j2k_problem",
    "jpeg_exif_orientation",
    "jpeg_frame",
    "jpeg_problem",
    "tiff_layout",
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
#: the SOC and SIZ markers that open every JPEG 2000 codestream (ISO 15444-1 A.4.1, A.5.1)
J2K_START = b"\xff\x4f\xff\x51"
#: the JPEG 2000 signature box that opens every JP2 / JPX file (ISO 15444-1 I.5.1); ingest's sniffing
#: (medmm.ingest.sniff) keeps its own copy so that it imports no imaging module
JP2_SIGNATURE = b"\0\0\0\x0cjP  \r\n\x87\n"


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


def jpeg_exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (0x0112, 1-8) of a JPEG file's APP1 Exif segment; 1 when there is none.

    Only that one number is read from the EXIF block (no other tag: they can hold names or dates).

    >>> import tempfile
    >>> from PIL import Image
    >>> p = Path(tempfile.mkdtemp()) / "x.jpg"
    >>> exif = Image.Exif()
    >>> exif[0x0112] = 6
    >>> Image.new("L", (4, 3)).save(p, exif=exif)
    >>> jpeg_exif_orientation(p)
    6
    """
    with open(path, "rb") as fh:
        if fh.read(2) != b"\xff\xd8":
            return 1
        while True:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0xFF or head[1] in (0xDA, 0xD9) or head[1] in _SOFS:
                return 1
            (length,) = struct.unpack(">H", head[2:4])
            if head[1] != 0xE1 or length < 16:
                fh.seek(length - 2, 1)
                continue
            block = fh.read(length - 2)
            if not block.startswith(b"Exif\0\0"):
                continue
            return _tiff_orientation(block[6:])


def _tiff_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of the first IFD of a TIFF-structured block (EXIF), 1 when absent or unreadable."""
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(f"{end}I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(f"{end}H", tiff[ifd : ifd + 2])
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            return 1
        tag, kind = struct.unpack(f"{end}HH", entry[:4])
        if tag == 0x0112 and kind == 3:
            (value,) = struct.unpack(f"{end}H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


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
    if data[:4] == J2K_START:
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
    if len(code) < 42 or code[:4] != J2K_START:
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
            return "" if code.rstrip(b"\0\xff")[-2:] == b"\xff\xd9" else cut  # DICOM pads odd frames
        if psot < 14:
            return f"a tile-part declares an impossible length {psot}: the file is damaged"
        pos += psot


@dataclass(frozen=True)
class TiffLayout:
    """How a TIFF file's first picture is stored (its first IFD), for reasons and for the sample type.

    >>> TiffLayout((64,), 3, 1, 1, 1).describe()
    '64-bit floating-point samples, 1 per pixel, compression 1 (none), photometric 1'
    """

    bits: tuple[int, ...]
    sample_format: int  # 1 unsigned integer, 2 signed integer, 3 IEEE float (TIFF tag 339)
    samples: int
    compression: int
    photometric: int

    def describe(self) -> str:
        """``"64-bit floating-point samples, 1 per pixel, compression 1 (none), photometric 1"``."""
        kind = {1: "unsigned integer", 2: "signed integer", 3: "floating-point"}.get(
            self.sample_format, f"SampleFormat {self.sample_format}"
        )
        bits = "/".join(str(b) for b in sorted(set(self.bits)))
        comp = {1: "none", 5: "LZW", 7: "JPEG", 8: "Deflate", 32773: "PackBits", 34712: "JPEG 2000"}.get(
            self.compression, "see the TIFF tag 259 list"
        )
        return (
            f"{bits}-bit {kind} samples, {self.samples} per pixel, compression {self.compression} ({comp}), "
            f"photometric {self.photometric}"
        )


def tiff_layout(path: Path) -> TiffLayout | None:
    """The sample layout of a classic TIFF's first IFD, or ``None`` when it cannot be read (damaged,
    BigTIFF, not a TIFF). Reads the IFD only, never pixel data; no tag value is kept but these numbers.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.tif"
    >>> bits, fmt = struct.pack("<HHIHH", 258, 3, 1, 64, 0), struct.pack("<HHIHH", 339, 3, 1, 3, 0)
    >>> _ = p.write_bytes(b"II*\\0" + struct.pack("<IH", 8, 2) + bits + fmt + bytes(4))
    >>> tiff_layout(p)
    TiffLayout(bits=(64,), sample_format=3, samples=1, compression=1, photometric=-1)
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head[:4] not in (b"II*\0", b"MM\0*"):
            return None
        end = "<" if head[:2] == b"II" else ">"
        (offset,) = struct.unpack(f"{end}I", head[4:8])
        fh.seek(offset)
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        (count,) = struct.unpack(f"{end}H", raw)
        entries = fh.read(12 * count)
        if len(entries) < 12 * count:
            return None
        values: dict[int, tuple[int, ...]] = {}
        for k in range(count):
            tag, typ, n = struct.unpack(f"{end}HHI", entries[12 * k : 12 * k + 8])
            if tag not in (258, 259, 262, 277, 339) or typ not in (3, 4):
                continue
            size = 2 if typ == 3 else 4
            fmt = f"{end}{n}{'H' if typ == 3 else 'I'}"
            if n * size <= 4:
                data = entries[12 * k + 8 : 12 * k + 8 + n * size]
            else:
                (where,) = struct.unpack(f"{end}I", entries[12 * k + 8 : 12 * k + 12])
                here = fh.tell()
                fh.seek(where)
                data = fh.read(n * size)
                fh.seek(here)
                if len(data) < n * size:
                    return None
            values[tag] = struct.unpack(fmt, data)
    return TiffLayout(
        bits=values.get(258, (1,)),
        sample_format=values.get(339, (1,))[0],
        samples=values.get(277, (1,))[0],
        compression=values.get(259, (1,))[0],
        photometric=values.get(262, (-1,))[0],
    )

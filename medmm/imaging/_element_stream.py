"""A minimal reader of the DICOM element stream up to Pixel Data, for the common well-formed file.

pydicom's ``dcmread(stop_before_pixels=True)`` builds a full dataset (element objects, tag objects,
file meta handling) for every file: most of the header scan's time. For the common case (128-byte
preamble, ``DICM``, explicit VR little endian file meta, a little endian data set in implicit or
explicit VR) this module walks the raw bytes once and records where each top-level element's value
lies, skipping sequences (defined or undefined length, nested items) without looking inside them.
Anything unusual - no preamble, big endian or deflated data sets, a value or element running past
the end of the file, a VR that does not match the transfer syntax, malformed items - returns ``None``
and the caller reads the file with pydicom exactly as before, so odd files keep pydicom's behaviour
(and its error messages).

>>> import io
>>> meta = b"\\x02\\x00\\x10\\x00UI\\x12\\x001.2.840.10008.1.2\\x00"
>>> body = b"\\x28\\x00\\x10\\x00\\x02\\x00\\x00\\x00\\x40\\x00"  # Rows = 64, implicit VR
>>> stream = parse_stream(io.BytesIO(b"\\0" * 128 + b"DICM" + meta + body), 128 + 4 + len(meta) + len(body))
>>> stream.transfer_syntax, stream.value(0x00280010)
('1.2.840.10008.1.2', (None, b'@\\x00'))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = ["ElementStream", "parse_stream"]

_IMPLICIT = "1.2.840.10008.1.2"
#: transfer syntaxes whose data set is not explicit VR little endian (big endian, deflated): pydicom
_NOT_EXPLICIT_LE = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT "
    b"UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_HH = struct.Struct("<HH")
_HHI = struct.Struct("<HHI")
_HH2sH = struct.Struct("<HH2sH")
_I = struct.Struct("<I")
#: first read: most headers are shorter (the scan has just read the first 4 KB through the same
#: buffered file, so this is usually one more system call or none). A longer header (e.g. Siemens CSA
#: headers, ~66 KB) is walked on from a read of at least _SECOND_READ bytes (then 4x more each time, up
#: to the whole file). Both stay under glibc's 128 KB mmap threshold: larger reads cost several times
#: more (fresh pages for every buffer)
_FIRST_READ = 8192
_SECOND_READ = 122880


class _Odd(Exception):
    """The stream is not the plain case this reader handles: fall back to pydicom."""


class _Short(Exception):
    """The buffer ends before the element stream does: read more of the file.

    ``resume``: the stream and the offset of the element that did not fit, when the walk over the data
    set had begun (it goes on from there), else ``None`` (parse again from the start).
    """

    resume: tuple[ElementStream, int] | None = None


@dataclass
class ElementStream:
    """Where the top-level elements of one file lie.

    ``elements`` maps each tag to ``(VR or None for implicit VR, value offset, value length)``;
    ``pixel`` is ``(tag, declared length, value offset)`` of the pixel data element, if any.
    """

    buffer: bytes
    transfer_syntax: str
    media_sop_class: str
    implicit: bool
    elements: dict[int, tuple[str | None, int, int]] = field(default_factory=dict)
    pixel: tuple[int, int, int] | None = None
    resume_at: int | None = field(default=None, repr=False)  # walking: start of the current element

    def value(self, tag: int) -> tuple[str | None, bytes] | None:
        """``(VR or None, raw value bytes)`` of a top-level element, or ``None`` when absent."""
        found = self.elements.get(tag)
        if found is None:
            return None
        vr, offset, length = found
        return vr, self.buffer[offset : offset + length]


def parse_stream(fh: BinaryIO, size: int) -> ElementStream | None:
    """Parse the file open in ``fh`` (at offset 0, ``size`` bytes) or return ``None`` (use pydicom).

    >>> import io
    >>> parse_stream(io.BytesIO(b"no preamble"), 11) is None
    True
    """
    want = min(size, _FIRST_READ)
    buf = fh.read(want)
    resume: tuple[ElementStream, int] | None = None
    while True:
        try:
            if resume is None:
                return _parse(buf, len(buf) >= size)
            stream, pos = resume  # the elements before ``pos`` are parsed the same in the longer buffer
            stream.buffer = buf
            return _walk(stream, buf, len(buf) >= size, pos)
        except _Odd:
            return None
        except _Short as short:
            if len(buf) >= size:
                return None  # runs past the end of the file: pydicom reports it
            resume = short.resume
            want = min(size, max(4 * len(buf), _SECOND_READ))
            buf += fh.read(want - len(buf))
            if len(buf) < want:
                return None


def _parse(buf: bytes, whole: bool) -> ElementStream:
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Odd
    pos, meta = _read_meta(buf, 132)
    tsyntax = meta.get(0x00020010, "")
    if not tsyntax or tsyntax in _NOT_EXPLICIT_LE:
        raise _Odd
    implicit = tsyntax == _IMPLICIT
    stream = ElementStream(buf, tsyntax, meta.get(0x00020002, ""), implicit)
    if pos + 8 > len(buf):
        if whole:
            raise _Odd  # no data set at all: pydicom's messages
        raise _Short
    vr_bytes = buf[pos + 4 : pos + 6]
    if implicit == (vr_bytes in _VRS):  # the data set's encoding disagrees with the transfer syntax
        raise _Odd
    return _walk(stream, buf, whole, pos)


def _walk(stream: ElementStream, buf: bytes, whole: bool, pos: int) -> ElementStream:
    """Record the data set's top-level elements from ``pos`` on; a :class:`_Short` raised here says
    where to go on from once more of the file is read (the element that did not fit)."""
    start = pos
    try:
        return _walk_from(stream, buf, whole, pos)
    except _Short as short:
        short.resume = (stream, stream.resume_at if stream.resume_at is not None else start)
        raise


def _walk_from(stream: ElementStream, buf: bytes, whole: bool, pos: int) -> ElementStream:
    implicit = stream.implicit
    elements = stream.elements
    end = len(buf)
    while True:
        stream.resume_at = pos
        if pos + 8 > end:
            if whole and pos <= end:  # pydicom stops quietly when fewer than 8 bytes remain
                break
            raise _Short
        if implicit:
            group, elem, length = _HHI.unpack_from(buf, pos)
            tag = (group << 16) | elem
            if tag in _PIXEL_TAGS:
                stream.pixel = (tag, length, pos + 8)
                break
            vr: str | None = None
            pos += 8
            if length == _UNDEFINED:
                pos = _skip_items(buf, pos, explicit=False)
                elements[tag] = (None, pos, 0)
                continue
        else:
            group, elem, raw_vr, length = _HH2sH.unpack_from(buf, pos)
            tag = (group << 16) | elem
            if raw_vr not in _VRS:
                raise _Odd
            if raw_vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Short
                (length,) = _I.unpack_from(buf, pos + 8)
                head = 12
            else:
                head = 8
            if tag in _PIXEL_TAGS:
                stream.pixel = (tag, length, pos + head)
                break
            vr = raw_vr.decode()
            pos += head
            if length == _UNDEFINED:
                if raw_vr not in (b"SQ", b"UN"):
                    raise _Odd
                pos = _skip_items(buf, pos, explicit=raw_vr == b"SQ")
                elements[tag] = (vr, pos, 0)
                continue
        if group == 0x0002 or tag >= _ITEM:
            raise _Odd  # file meta inside the data set, or a delimiter out of place
        if pos + length > end:
            if whole:
                raise _Odd  # a value cut off by the end of the file
            raise _Short
        elements[tag] = (vr, pos, length)
        pos += length
    stream.resume_at = None
    if not elements:
        raise _Odd
    return stream


def _read_meta(buf: bytes, pos: int) -> tuple[int, dict[int, str]]:
    """File meta elements (explicit VR little endian, group 0x0002); UIDs decoded."""
    meta: dict[int, str] = {}
    while pos + 8 <= len(buf):
        group, elem, raw_vr, length = _HH2sH.unpack_from(buf, pos)
        if group != 0x0002:
            break
        if raw_vr not in _VRS:
            raise _Odd
        if raw_vr in _LONG_VRS:
            if pos + 12 > len(buf):
                raise _Short
            (length,) = _I.unpack_from(buf, pos + 8)
            pos += 12
        else:
            pos += 8
        if length == _UNDEFINED:
            raise _Odd
        if pos + length > len(buf):
            raise _Short
        if raw_vr == b"UI":
            try:
                meta[(group << 16) | elem] = buf[pos : pos + length].decode("ascii").rstrip("\x00 ")
            except UnicodeDecodeError:
                raise _Odd from None
        pos += length
    else:
        raise _Short
    return pos, meta


def _skip_items(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after the sequence delimiter of an undefined-length sequence starting at ``pos``."""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise _Short
        group, elem, length = _HHI.unpack_from(buf, pos)
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Odd
        if length == _UNDEFINED:
            pos = _skip_dataset(buf, pos, explicit)
        else:
            if pos + length > end:
                raise _Short
            pos += length


def _skip_dataset(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after the item delimiter of an undefined-length item starting at ``pos``."""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise _Short
        group, elem = _HH.unpack_from(buf, pos)
        tag = (group << 16) | elem
        if tag == _ITEM_END:
            return pos + 8
        if tag >= _ITEM:
            raise _Odd
        if explicit:
            raw_vr = buf[pos + 4 : pos + 6]
            if raw_vr not in _VRS:
                raise _Odd
            if raw_vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Short
                (length,) = _I.unpack_from(buf, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from("<H", buf, pos + 6)
                pos += 8
            nested_explicit = raw_vr == b"SQ"
        else:
            (length,) = _I.unpack_from(buf, pos + 4)
            pos += 8
            raw_vr = b""
            nested_explicit = False
        if length == _UNDEFINED:
            if explicit and raw_vr not in (b"SQ", b"UN"):
                raise _Odd
            pos = _skip_items(buf, pos, nested_explicit)
            continue
        if pos + length > end:
            raise _Short
        pos += length

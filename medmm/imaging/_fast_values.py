"""A read-only view of a pydicom dataset that decodes the plain elements the header summary needs itself.

pydicom converts each raw element through its general machinery (hooks, validation, value classes),
which costs more than parsing the file. For the few value representations whose bytes are plain
ASCII or fixed-size integers (UI, CS, DS, IS, DA, TM, US) this view decodes the raw bytes directly,
caches every value, and hands everything else (sequences, unexpected VRs) to pydicom unchanged.
Character-set dependent text (LO, SH, PN) is decoded here only when every byte is 7-bit ASCII without
ISO 2022 escapes, where every DICOM character set gives the same characters; otherwise pydicom decodes
it with the dataset's Specific Character Set. Values have the shapes pydicom gives the
:mod:`medmm.imaging._dicom_values` helpers: a string, an int, or a list for several values; ``None`` for
an empty numeric element.

>>> import pydicom
>>> ds = pydicom.Dataset()
>>> ds.Rows, ds.ImageType = 64, ["ORIGINAL", "PRIMARY"]
>>> view = FastHeader(ds)
>>> view.get("Rows"), view.get("ImageType"), view.get("Columns"), "Rows" in view
(64, ['ORIGINAL', 'PRIMARY'], None, True)
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["PER_INSTANCE", "FastHeader", "stream_signature"]

_CHARSET_VRS = frozenset({"LO", "SH", "PN"})

#: keyword -> (tag, VR) of the elements decoded here; any other keyword goes through pydicom
_PLAIN: dict[str, tuple[int, str]] = {
    "SOPInstanceUID": (0x00080018, "UI"),
    "SOPClassUID": (0x00080016, "UI"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "SeriesNumber": (0x00200011, "IS"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "EchoNumbers": (0x00180086, "IS"),
    "TemporalPositionIdentifier": (0x00200100, "IS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Modality": (0x00080060, "CS"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "ImageType": (0x00080008, "CS"),
    "BodyPartExamined": (0x00180015, "CS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "SamplesPerPixel": (0x00280002, "US"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "PixelSpacing": (0x00280030, "DS"),
    "ImagerPixelSpacing": (0x00181164, "DS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "KVP": (0x00180060, "DS"),
    "RepetitionTime": (0x00180080, "DS"),
    "EchoTime": (0x00180081, "DS"),
    "InversionTime": (0x00180082, "DS"),
    "FlipAngle": (0x00181314, "DS"),
    "MagneticFieldStrength": (0x00180087, "DS"),
    "GantryDetectorTilt": (0x00181120, "DS"),
    "StudyDate": (0x00080020, "DA"),
    "SeriesDate": (0x00080021, "DA"),
    "AcquisitionDate": (0x00080022, "DA"),
    "ContentDate": (0x00080023, "DA"),
    "StudyTime": (0x00080030, "TM"),
    "SeriesTime": (0x00080031, "TM"),
    "AcquisitionTime": (0x00080032, "TM"),
    "ContentTime": (0x00080033, "TM"),
    "PatientID": (0x00100020, "LO"),
    "PatientName": (0x00100010, "PN"),
    "PatientBirthDate": (0x00100030, "DA"),
    "Manufacturer": (0x00080070, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "ProtocolName": (0x00181030, "LO"),
    "ConvolutionKernel": (0x00181210, "SH"),
}

_MISSING = object()

#: plain keywords whose values differ from slice to slice of one series; :attr:`FastHeader.signature`
#: leaves them out
PER_INSTANCE = frozenset(
    {
        "SOPInstanceUID",
        "InstanceNumber",
        "ImagePositionPatient",
        "AcquisitionNumber",
        "AcquisitionDate",
        "AcquisitionTime",
        "ContentDate",
        "ContentTime",
    }
)

#: (tag, keyword, VR, text depends on the character set) of every plain keyword, and of the
#: per-instance ones
_ORDER: tuple[tuple[int, str, str, bool], ...] = tuple(
    (tag, keyword, vr, vr in _CHARSET_VRS) for keyword, (tag, vr) in _PLAIN.items()
)
_OWN_ORDER = tuple(entry for entry in _ORDER if entry[1] in PER_INSTANCE)
#: tags of the plain elements a header signature covers
_SIGNED_TAGS = tuple(tag for tag, keyword, _vr, _cs in _ORDER if keyword not in PER_INSTANCE)
_SHARED_KEYWORDS = frozenset(_PLAIN) - PER_INSTANCE

#: tags of the sequences whose presence alone the summary tests (``keyword in view``), so that a plain
#: file is read without importing pydicom (~0.1 s) for its data dictionary
_PRESENCE_TAGS: dict[str, int] = {
    "DirectoryRecordSequence": 0x00041220,
    "PerFrameFunctionalGroupsSequence": 0x52009230,
}


def stream_signature(stream: Any) -> tuple[Any, ...]:
    """The raw value bytes (and VR) of every plain element outside :data:`PER_INSTANCE`, ``None`` for an
    absent one. Headers with equal signatures give equal values for those keywords, and when one of
    them decodes without pydicom (:attr:`FastHeader.complete`) so does the other.

    >>> from medmm.imaging._element_stream import ElementStream
    >>> stream = ElementStream(b"MR", "1.2.840.10008.1.2", "", True, {0x00080060: (None, 0, 2)})
    >>> [v for v in stream_signature(stream) if v]
    [(None, b'MR')]
    """
    elements, buffer = stream.elements, stream.buffer
    return tuple(
        [None if f is None else (f[0], buffer[f[1] : f[1] + f[2]]) for f in map(elements.get, _SIGNED_TAGS)]
    )


def _decode_stream(
    stream: Any, order: tuple[tuple[int, str, str, bool], ...] = _ORDER
) -> tuple[dict[str, Any], bool]:
    """The values :meth:`FastHeader.get` gives for the plain keywords of ``order``, decoded in one pass,
    and whether all of them decoded here.

    An absent element is ``_MISSING`` (as ``get`` finds it); one that needs pydicom (an unexpected VR,
    non-ASCII text, an odd-length US value) is left out, so ``get`` decodes it as before.
    """
    out: dict[str, Any] = {}
    complete = True
    elements, buffer = stream.elements, stream.buffer
    for tag, keyword, vr, charset in order:
        found = elements.get(tag)
        if found is None:
            out[keyword] = _MISSING
            continue
        raw_vr, offset, length = found
        if raw_vr is not None and raw_vr != vr:
            complete = False  # odd VR: pydicom
            continue
        data = buffer[offset : offset + length]
        if vr == "US":
            if not data:
                out[keyword] = None
            elif not len(data) % 2:
                values = struct.unpack(f"<{len(data) // 2}H", data)
                out[keyword] = values[0] if len(values) == 1 else list(values)
            else:
                complete = False
            continue
        if charset and (not data.isascii() or b"\x1b" in data):
            complete = False
            continue
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            complete = False
            continue
        text = text.rstrip(" \x00")
        if vr in ("DS", "IS") and not text.strip():
            out[keyword] = None
            continue
        parts = text.split("\\")
        out[keyword] = parts[0] if len(parts) == 1 else parts
    return out, complete


class FastHeader:
    """``get`` / ``in`` over a dataset, each element decoded once (see the module docstring).

    ``ds`` is a pydicom dataset, or a callable returning one (called at most once, only when an element
    must be decoded by pydicom) when ``stream`` holds the file's raw elements
    (:func:`~medmm.imaging._element_stream.parse_stream`). ``shared``: the :meth:`shared_values` of a
    complete header with the same :func:`stream_signature`.
    """

    #: header read from an element stream: every plain element decoded here (none needs pydicom)
    complete: bool = False

    def __init__(self, ds: Any, stream: Any = None, shared: dict[str, Any] | None = None) -> None:
        self._stream = stream
        self._cache: dict[str, Any] = {}
        if stream is None:
            self._ds = ds
            self._loader = None
            _implicit, little = getattr(ds, "original_encoding", (None, True))
            self._order = ">" if little is False else "<"
            self.file_meta = getattr(ds, "file_meta", None)
        else:
            self._ds = None
            self._loader = ds
            self._order = "<"
            self.file_meta = {
                "TransferSyntaxUID": stream.transfer_syntax,
                "MediaStorageSOPClassUID": stream.media_sop_class,
            }
            if shared is None:
                self._cache, self.complete = _decode_stream(stream)
            else:  # values of a header with the same signature: only the per-instance ones are decoded
                own, self.complete = _decode_stream(stream, _OWN_ORDER)
                self._cache = {**shared, **own}

    def shared_values(self) -> dict[str, Any]:
        """The decoded plain values outside :data:`PER_INSTANCE` (of a :attr:`complete` header)."""
        return {k: v for k, v in self._cache.items() if k in _SHARED_KEYWORDS}

    @property
    def dataset(self) -> Any:
        """The pydicom dataset (read on first use when the header came from an element stream)."""
        if self._ds is None:
            self._ds = self._loader()  # type: ignore[misc]
        return self._ds

    def __contains__(self, keyword: str) -> bool:
        if self._stream is None:
            return keyword in self._ds
        tag = _PLAIN[keyword][0] if keyword in _PLAIN else _PRESENCE_TAGS.get(keyword)
        if tag is None:
            from pydicom.datadict import tag_for_keyword

            tag = tag_for_keyword(keyword)
        return tag is not None and tag in self._stream.elements

    def get(self, keyword: str, default: Any = None) -> Any:
        """The element's value (decoded once), or ``default`` when absent."""
        try:
            value = self._cache[keyword]
        except KeyError:  # not decoded yet (an absent element is cached as _MISSING)
            value = self._cache[keyword] = self._decode(keyword)
        return default if value is _MISSING else value

    def _raw(self, tag: int) -> Any:
        """(VR or None, bytes) of the raw element; None when absent; _MISSING when pydicom must decode."""
        if self._stream is not None:
            return self._stream.value(tag)
        if tag not in self._ds:
            return None
        raw = self._ds.get_item(tag)
        data = getattr(raw, "value", None)
        if type(raw).__name__ != "RawDataElement" or not isinstance(data, bytes):
            return _MISSING  # already converted or deferred: pydicom
        return getattr(raw, "VR", None), data

    def _decode(self, keyword: str) -> Any:
        plain = _PLAIN.get(keyword)
        if plain is None:
            if self._stream is not None and keyword not in self:
                return _MISSING  # absent: no need to read the file with pydicom
            return self.dataset.get(keyword, _MISSING)
        tag, vr = plain
        found = self._raw(tag)
        if found is None:
            return _MISSING
        if found is _MISSING:
            return self.dataset.get(keyword, _MISSING)
        raw_vr, data = found
        if raw_vr not in (None, vr):
            return self.dataset.get(keyword, _MISSING)  # odd VR: pydicom
        if vr == "US":
            return self._unsigned(data, keyword)
        if vr in _CHARSET_VRS and (not data.isascii() or b"\x1b" in data):
            return self.dataset.get(keyword, _MISSING)  # non-ASCII text: pydicom applies the character set
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return self.dataset.get(keyword, _MISSING)
        text = text.rstrip(" \x00")  # pydicom strips trailing padding, not the inside of a multi-value
        if vr in ("DS", "IS") and not text.strip():
            return None
        parts = text.split("\\")
        return parts[0] if len(parts) == 1 else parts

    def _unsigned(self, data: bytes, keyword: str) -> Any:
        if not data:
            return None
        if len(data) % 2:
            return self.dataset.get(keyword, _MISSING)  # malformed length: let pydicom decide
        values = list(struct.unpack(f"{self._order}{len(data) // 2}H", data))
        return values[0] if len(values) == 1 else values

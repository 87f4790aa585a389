"""Input errors of the signals stage; each names the file, the problem and the fix.

The class name groups manifest ``reason`` values (``reason_of(exc)`` starts with it), so a quarantined
record reads e.g. ``MissingSignalFileError: 100.hea: signal file 100.dat is missing ...``.

>>> err = MissingHeaderError("100.dat", "no .hea header names this file", "copy 100.hea beside it")
>>> isinstance(err, SignalFileError), str(err)
(True, '100.dat: no .hea header names this file. Fix: copy 100.hea beside it')
"""

from __future__ import annotations

from medmm.errors import InputError

__all__ = [
    "AmbiguousTimeError",
    "AnnotationFileError",
    "EmptyRecordError",
    "HeaderError",
    "InvalidSamplingRateError",
    "MissingHeaderError",
    "MissingSegmentError",
    "MissingSignalFileError",
    "NonMonotonicTimeError",
    "NotASignalError",
    "SampleCountMismatchError",
    "SignalFileError",
    "TruncatedSignalError",
    "UnknownFormatError",
]


class SignalFileError(InputError):
    """A signal file or record cannot be used."""


class HeaderError(SignalFileError):
    """A header (``.hea``, EDF header, DICOM waveform module) is unreadable or inconsistent."""


class MissingHeaderError(SignalFileError):
    """A signal data file (``.dat``, ``.mat``) with no header naming it."""


class MissingSignalFileError(SignalFileError):
    """A header names a signal file that is not there."""


class MissingSegmentError(SignalFileError):
    """A multi-segment record lists a segment whose header or data is not there."""


class TruncatedSignalError(SignalFileError):
    """The signal file holds fewer bytes than the header's sample count needs."""


class SampleCountMismatchError(SignalFileError):
    """The header's sample count disagrees with the data (or the segments' lengths)."""


class UnknownFormatError(SignalFileError):
    """A storage format code (WFDB ``fmt``) or file kind this stage cannot decode."""


class EmptyRecordError(SignalFileError):
    """A record with zero samples, or whose samples are all missing (NaN)."""


class InvalidSamplingRateError(HeaderError):
    """A sampling frequency of 0, negative or not a number."""


class NonMonotonicTimeError(SignalFileError):
    """A tabular series whose timestamps go backwards or are unparseable."""


class NotASignalError(SignalFileError):
    """A file that is not a physiological signal (a licence, an image DICOM, a CSV without time)."""


class AmbiguousTimeError(SignalFileError):
    """Timestamps that can be read more than one way (day/month order, offsets on some rows only)."""


class AnnotationFileError(SignalFileError):
    """A reference annotation file (``.atr`` ...) that cannot be read; its record is ingested without it."""

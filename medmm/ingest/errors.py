"""Input errors raised while discovering an archive; each names the file, the problem and the fix.

Errors found while reading DICOM/NIfTI content come from :mod:`medmm.imaging.errors`; these cover
what discovery sees before that: links, permissions, empty files, formats this stage does not convert.

>>> str(EmptyFileError("a/b.dcm", "file is empty (0 bytes)", "copy it again from the source"))
'a/b.dcm: file is empty (0 bytes). Fix: copy it again from the source'
"""

from __future__ import annotations

from medmm.errors import InputError

__all__ = [
    "ArchiveLinkError",
    "CompressedInputError",
    "CorruptGzipError",
    "EmptyFileError",
    "IngestTaskError",
    "UnreadableInputError",
    "UnsupportedFormatError",
]


class ArchiveLinkError(InputError):
    """A symbolic link that points outside the archive, or nowhere."""


class UnreadableInputError(InputError):
    """A file or folder that cannot be opened (permissions, special file, I/O error)."""


class EmptyFileError(InputError):
    """A file of 0 bytes."""


class CorruptGzipError(InputError):
    """A gzip file whose stream cannot be decompressed."""


class CompressedInputError(InputError):
    """A whole-file-compressed object the readers need uncompressed (e.g. ``.dcm.gz``)."""


class UnsupportedFormatError(InputError):
    """A recognised (or unrecognisable) format that ``medmm ingest`` does not turn into volumes."""


class IngestTaskError(InputError):
    """A task failed unexpectedly (bug or lost worker); the file was not processed."""

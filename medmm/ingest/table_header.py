"""Name a table's columns in an error message without echoing a data row.

A table exported without a header line (``MRN4471923,Smith^John,1``) is read with its first data row
as column names, so "no column 'patient' (columns found: ...)" would print a patient's id and name on
the console and into a workflow's log. :func:`describe_columns` lists the names only when they look
like a header; otherwise it says that the first line looks like data.

>>> describe_columns(["Patient ID", "study", "sepsis"])
"columns found: 'Patient ID', 'study', 'sepsis'"
>>> describe_columns(["MRN4471923", "Smith^John", "1"])
'3 columns; the first line looks like data, not a header (values not shown): add a header line'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["describe_columns", "looks_like_data"]

#: A column name a header line would not have: a number, a code with 4+ digits, a DICOM person name,
#: an e-mail, a path or a data file, or a sentence.
_DATA = re.compile(
    r"^\s*[+-]?\d+(\.\d+)?\s*$|\d{4}|[\^@/\\]|\.(png|jpe?g|tiff?|bmp|dcm|nii|gz|img|hdr|csv|tsv|txt|"
    r"edf|bdf|hea|dat|parquet|json)\b",
    re.IGNORECASE,
)


def looks_like_data(name: object) -> bool:
    """Whether a column name is a data value rather than a header name (see :data:`_DATA`; also 4+
    words or over 40 characters).

    >>> looks_like_data("Image Index"), looks_like_data("cxr_001.png"), looks_like_data("0")
    (False, True, True)
    """
    text = str(name)
    return bool(_DATA.search(text)) or len(text) > 40 or len(text.split()) >= 4


def describe_columns(names: Sequence[object]) -> str:
    """``columns found: 'a', 'b'``, or, when one name looks like data (:func:`looks_like_data`), the
    count and a hint, with no name."""
    if any(looks_like_data(n) for n in names):
        return (
            f"{len(names)} columns; the first line looks like data, not a header (values not shown): "
            "add a header line"
        )
    return "columns found: " + ", ".join(repr(str(n)) for n in names)

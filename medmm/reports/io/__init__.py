"""Readers for report inputs (tables and folders of text files) and text repair."""

from medmm.reports.io.inputs import (
    MAX_CHARS,
    InputBatch,
    MissingColumnError,
    ReportInput,
    clean_text,
    decode_bytes,
    read_reports,
)

__all__ = [
    "MAX_CHARS",
    "InputBatch",
    "MissingColumnError",
    "ReportInput",
    "clean_text",
    "decode_bytes",
    "read_reports",
]

"""Typed rows of the reports stage: entities, report-level labels, texts and the reports manifest.

Tables written by ``medmm reports parse`` into the run directory:

* ``entities.parquet`` - one row per entity mention (:class:`EntityRow`)
* ``report_labels.parquet`` - one row per (report, finding) that a report mentions, plus ``normal``
  for every parsed report (:class:`ReportLabelRow`)
* ``report_texts.parquet`` - the cleaned text each offset refers to (:class:`ReportTextRow`), only
  with ``parse --keep-text`` (the text is not de-identified)
* ``manifest_reports.parquet`` - one row per input report (:class:`ReportManifestRow`); named apart
  from imaging's ``manifest.parquet`` so stages can share one run directory.

>>> row = ReportManifestRow(path="r.csv#1", format="csv", status=Status.ingested, report_id="1")
>>> row.report_id
'1'
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from medmm.records import ManifestRow, Record, Status

__all__ = [
    "SCHEMAS",
    "EntityRow",
    "FindingStatus",
    "ReportLabelRow",
    "ReportManifestRow",
    "ReportTextRow",
    "Status",
]


class FindingStatus(StrEnum):
    """Assertion status of a finding mention or of a finding at report level."""

    present = "present"
    absent = "absent"
    uncertain = "uncertain"


class ReportManifestRow(ManifestRow):
    """One input report. ``path`` is ``<file>#<row>`` for tables, the file name for ``.txt`` folders.

    ``notes`` lists repairs made to the text (``decoded-with-replacement``, ``html-stripped``,
    ``truncated``...) so that nothing is changed silently.

    ``report_id`` (here and in every reports table) is the pseudonym ``rep-...`` of the input's report
    id (accession / RIS number; a ``.txt`` file's stem) with the site key, or the id as given when
    parsed with ``--keep-report-ids``; ``""`` for a row without an id.

    An ingested report whose date could not be used (unreadable, or no patient id to shift it by) has
    a ``reason`` saying so (row and column, never the value) and a ``notes`` entry
    (``date-unreadable`` / ``date-without-patient``).
    """

    report_id: str
    patient_id: str | None = None
    study_id: str | None = None
    n_chars: int = 0
    n_sections: int = 0
    n_entities: int = 0
    notes: str = ""
    #: pseudonym of the report's accession number (``--accession-column``, or an id column named
    #: ``accession``): ``Pseudonymizer.id(accession, "report")``, as imaging's ``accession_id``
    accession_id: str | None = None
    #: the report / exam date (``--date-column``) moved by the patient's keyed shift: ISO date-time, or
    #: an ISO date alone when the input had no time of day
    report_time: str | None = None
    #: ``"datetime"`` or ``"date"`` (``report_time`` is a whole day); ``None`` without a date
    report_time_precision: str | None = None


class EntityRow(Record):
    """One entity mention; offsets are into the report's cleaned text (``report_texts``).

    ``label`` is ``FINDING``, ``DEVICE``, ``ANATOMY``, ``MEASUREMENT`` or a model's own label.
    ``finding`` is the vocabulary name (``None`` for anatomy and model labels outside the vocabulary);
    ``location`` the nearest anatomy of the sentence; ``laterality`` the side the finding's own phrase
    names (``left``, ``right``, ``bilateral``; ``None`` without one, and for anatomy).
    ``negated`` / ``uncertain`` / ``historical`` / ``experiencer`` are the ConText attributes of the
    mention: ``historical`` for the patient's history ("history of pneumonia"), ``experiencer``
    ``patient`` or ``family`` ("family history of lung cancer", "mother with breast cancer"); a
    historical or family mention does not decide the report's labels. A measurement linked to the
    finding it sizes fills ``measurement_mm`` (largest value, in mm), ``measurement_dims_mm`` (every
    value as written, in mm) and ``measurement_kind`` (``single``, ``range`` or ``dimensions``).
    """

    report_id: str
    section: str
    sentence: int
    start: int
    end: int
    text: str
    label: str
    negated: bool
    uncertain: bool
    historical: bool = False
    experiencer: Literal["patient", "family"] = "patient"
    finding: str | None = None
    long_form: str | None = None
    location: str | None = None
    laterality: Literal["left", "right", "bilateral"] | None = None
    measurement_mm: float | None = None
    measurement_dims_mm: list[float] | None = None
    measurement_kind: str | None = None
    measurement_text: str | None = None
    source: str


class ReportLabelRow(Record):
    """A finding of one report with its status and the evidence span that decided it."""

    report_id: str
    finding: str
    status: FindingStatus
    evidence: str
    section: str | None = None
    start: int | None = None
    end: int | None = None
    n_mentions: int = 0


class ReportTextRow(Record):
    """The cleaned text of one report (sections joined under canonical headers); written only with
    ``parse --keep-text``: the text is not de-identified."""

    report_id: str
    text: str


SCHEMAS: dict[str, type[BaseModel]] = {
    "entities": EntityRow,
    "report_labels": ReportLabelRow,
    "report_texts": ReportTextRow,
    "manifest_reports": ReportManifestRow,
}

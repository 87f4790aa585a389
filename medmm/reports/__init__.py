"""medmm.reports: radiology reports -> sections, entities (negation, uncertainty, measurements) -> findings.

``medmm reports parse`` reads a table or a folder of text files, runs a scispaCy-tokenized spaCy
pipeline (radiology lexicon EntityRuler, optional NER model, AbbreviationDetector, NegEx-style
assertion) over Dask, and writes ``entities.parquet``, ``report_labels.parquet``,
``report_texts.parquet`` and ``manifest_reports.parquet`` into the run directory. Heavy modules are
imported lazily; this package imports nothing heavy.

>>> from medmm.reports import find_measurements
>>> find_measurements("1.2 x 0.8 cm nodule")[0].values_mm
(12.0, 8.0)
"""

from medmm.reports.findings import Mention, report_findings
from medmm.reports.measurements import Measurement, find_measurements, link_measurements
from medmm.reports.negation import Trigger, assertion_of
from medmm.reports.records import EntityRow, FindingStatus, ReportLabelRow, ReportManifestRow, ReportTextRow
from medmm.reports.sections import Section, find_sections

__all__ = [
    "EntityRow",
    "FindingStatus",
    "Measurement",
    "Mention",
    "ReportLabelRow",
    "ReportManifestRow",
    "ReportTextRow",
    "Section",
    "Trigger",
    "assertion_of",
    "find_measurements",
    "find_sections",
    "link_measurements",
    "parse_reports",
    "render_report",
    "report_findings",
]


def __getattr__(name: str):  # lazy: pandas/spaCy only when these are used
    if name == "parse_reports":
        from medmm.reports.pipeline import parse_reports

        return parse_reports
    if name == "render_report":
        from medmm.reports.render import render_report

        return render_report
    raise AttributeError(name)

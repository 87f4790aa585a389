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

from __future__ import annotations

from medmm._lazy import lazy_exports

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

# lazy (PEP 562): `medmm --help` imports medmm.reports.cli, which then imports none of these modules
_WHERE = {
    "EntityRow": "medmm.reports.records",
    "FindingStatus": "medmm.reports.records",
    "Measurement": "medmm.reports.measurements",
    "Mention": "medmm.reports.findings",
    "ReportLabelRow": "medmm.reports.records",
    "ReportManifestRow": "medmm.reports.records",
    "ReportTextRow": "medmm.reports.records",
    "Section": "medmm.reports.sections",
    "Trigger": "medmm.reports.negation",
    "assertion_of": "medmm.reports.negation",
    "find_measurements": "medmm.reports.measurements",
    "find_sections": "medmm.reports.sections",
    "link_measurements": "medmm.reports.measurements",
    "parse_reports": "medmm.reports.pipeline",
    "render_report": "medmm.reports.render",
    "report_findings": "medmm.reports.findings",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""Report-level findings: finding mentions -> one status per finding (present / absent / uncertain).

Rules (pure, no spaCy):

* only mentions in the scored sections (``FINDINGS``, ``IMPRESSION``, or ``BODY`` when a report has
  no headers) decide; a finding named only in INDICATION/HISTORY ("r/o pneumonia") gets no label;
* a finding is ``present`` if any scored mention is neither negated nor uncertain, else
  ``uncertain`` if any mention is uncertain, else ``absent``; the evidence is the first mention
  with the winning status;
* ``normal`` is derived for every report: ``present`` when no abnormal finding (any vocabulary
  finding or device other than ``normal``) is present or uncertain in the scored sections;
  the evidence is an explicit normal phrase when there is one ("no acute cardiopulmonary
  abnormality", "normal chest"), else the absence of abnormal findings. Otherwise ``normal`` is
  ``absent`` with the first present abnormal finding as evidence.

>>> m = [Mention("pleural effusion", "FINDINGS", 10, 18, "effusion", negated=True, uncertain=False),
...      Mention("nodule", "IMPRESSION", 30, 36, "nodule", negated=False, uncertain=True)]
>>> [(r.finding, r.status.value) for r in report_findings("r1", m)]
[('pleural effusion', 'absent'), ('nodule', 'uncertain'), ('normal', 'absent')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from medmm.reports.records import FindingStatus, ReportLabelRow

__all__ = ["NORMAL", "Mention", "find_normal_phrase", "report_findings", "status_of"]

NORMAL = "normal"
DEFAULT_SCORED = frozenset({"FINDINGS", "IMPRESSION", "BODY"})
_NORMAL_PHRASES = re.compile(
    r"\b(?:no\s+(?:acute|active)\s+(?:cardiopulmonary|cardiothoracic|pulmonary|chest|intrathoracic|thoracic)?\s*"
    r"(?:abnormality|abnormalities|disease|process|findings?|pathology)"
    r"|normal\s+(?:chest|study|exam|examination|radiograph|x-?ray|cxr)"
    r"|(?:chest|study|exam|examination)\s+(?:is\s+)?(?:within\s+normal\s+limits|normal|negative)"
    r"|negative\s+(?:chest|study|exam|examination)"
    r"|no\s+radiographic\s+evidence\s+of\s+(?:acute\s+)?(?:cardiopulmonary\s+)?disease)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    """One finding mention: vocabulary name, section, char span, text and assertion."""

    finding: str
    section: str
    start: int
    end: int
    text: str
    negated: bool
    uncertain: bool

    @property
    def status(self) -> FindingStatus:
        """Mention-level status."""
        return status_of(self.negated, self.uncertain)


def status_of(negated: bool, uncertain: bool) -> FindingStatus:
    """Status of one mention; negation wins over uncertainty.

    >>> status_of(False, True).value
    'uncertain'
    """
    if negated:
        return FindingStatus.absent
    return FindingStatus.uncertain if uncertain else FindingStatus.present


def find_normal_phrase(text: str, spans: Iterable[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """Char span of the first explicit normal statement of ``text`` inside ``spans`` (all text if none).

    >>> find_normal_phrase("IMPRESSION: No acute cardiopulmonary abnormality.")
    (12, 48)
    """
    ranges = list(spans) or [(0, len(text))]
    for m in _NORMAL_PHRASES.finditer(text):
        if any(a <= m.start() < b for a, b in ranges):
            return m.start(), m.end()
    return None


_RANK = {FindingStatus.present: 0, FindingStatus.uncertain: 1, FindingStatus.absent: 2}


def report_findings(
    report_id: str,
    mentions: Sequence[Mention],
    *,
    text: str = "",
    scored: frozenset[str] = DEFAULT_SCORED,
    scored_spans: Sequence[tuple[int, int]] = (),
) -> list[ReportLabelRow]:
    """Report-level labels from finding mentions (order: first mention of each finding, then normal).

    Parameters
    ----------
    report_id
        Written to every row.
    mentions
        Finding mentions of the report (any section).
    text, scored_spans
        The report text and the char spans of its scored sections, to look for explicit normal phrases.
    scored
        Section names whose mentions count.
    """
    by_finding: dict[str, list[Mention]] = {}
    for m in mentions:
        if m.section in scored and m.finding != NORMAL:
            by_finding.setdefault(m.finding, []).append(m)
    rows: list[ReportLabelRow] = []
    abnormal: Mention | None = None
    for finding, ms in by_finding.items():
        best = min(ms, key=lambda m: (_RANK[m.status], m.start))
        rows.append(
            ReportLabelRow(
                report_id=report_id,
                finding=finding,
                status=best.status,
                evidence=best.text,
                section=best.section,
                start=best.start,
                end=best.end,
                n_mentions=len(ms),
            )
        )
        if best.status is not FindingStatus.absent and (abnormal is None or best.start < abnormal.start):
            abnormal = best
    if abnormal is not None:
        rows.append(
            ReportLabelRow(
                report_id=report_id,
                finding=NORMAL,
                status=FindingStatus.absent,
                evidence=f"{abnormal.finding} {abnormal.status.value}: {abnormal.text}",
                section=abnormal.section,
                start=abnormal.start,
                end=abnormal.end,
            )
        )
        return rows
    span = find_normal_phrase(text, scored_spans) if text else None
    if span is not None:
        rows.append(
            ReportLabelRow(
                report_id=report_id,
                finding=NORMAL,
                status=FindingStatus.present,
                evidence=text[span[0] : span[1]],
                start=span[0],
                end=span[1],
                section=None,
                n_mentions=1,
            )
        )
    else:
        rows.append(
            ReportLabelRow(
                report_id=report_id,
                finding=NORMAL,
                status=FindingStatus.present,
                evidence="no abnormal finding present or uncertain",
            )
        )
    return rows

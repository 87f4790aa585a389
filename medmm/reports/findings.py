"""Report-level findings: finding mentions -> one status per finding (present / absent / uncertain).

Rules (pure, no spaCy):

* only mentions in the scored sections (``FINDINGS``, ``IMPRESSION``, or ``BODY`` when a report has
  no headers) decide; a finding named only in INDICATION/HISTORY ("r/o pneumonia") gets no label;
* nor do historical mentions ("history of pneumonia", :mod:`medmm.reports.context`) or a relative's
  ("family history of lung cancer"): they are not findings of this exam of this patient; a finding
  also seen now ("History of pneumonia. Right lower lobe pneumonia.") is labelled by that mention;
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
from typing import Any, NamedTuple

from medmm.reports.records import FindingStatus, ReportLabelRow

__all__ = [
    "NORMAL",
    "Mention",
    "find_normal_phrase",
    "label_records",
    "label_tuples",
    "report_findings",
    "status_of",
]

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
# The same phrases for ASCII text in lower case, case-sensitive, as one pattern per first word: each
# begins with that word as a literal (``no``, ``negative``, ``chest``, ``study``, ``exam``), which the
# regex engine searches for directly instead of trying every n/c/s/e (~1.3-1.5x faster). The first
# match of any of them is the first of the single pattern: at one position at most one can match (the
# words differ in their first two letters), and ``no`` keeps the single pattern's order of
# alternatives. Each ``w(?<!\ww)`` is ``\b`` before the word ``w``.
_AFTER = r"\s+(?:is\s+)?(?:within\s+normal\s+limits|normal|negative)"
_NORMAL_BY_WORD = tuple(
    re.compile(p)
    for p in (
        r"no(?<!\wno)(?:\s+(?:acute|active)\s+(?:cardiopulmonary|cardiothoracic|pulmonary|chest|intrathoracic"
        r"|thoracic)?\s*(?:abnormality|abnormalities|disease|process|findings?|pathology)"
        r"|rmal\s+(?:chest|study|exam|examination|radiograph|x-?ray|cxr)"
        r"|\s+radiographic\s+evidence\s+of\s+(?:acute\s+)?(?:cardiopulmonary\s+)?disease)\b",
        r"negative(?<!\wnegative)\s+(?:chest|study|exam|examination)\b",
        rf"chest(?<!\wchest){_AFTER}\b",
        rf"study(?<!\wstudy){_AFTER}\b",
        rf"exam(?<!\wexam)(?:ination)?{_AFTER}\b",
    )
)


_NO_RX = _NORMAL_BY_WORD[0]
# (word, pattern) with the empty word for `no`: always searched (`"" in s` is true)
_BY_WORD = tuple(zip(("", "negative", "chest", "study", "exam"), _NORMAL_BY_WORD, strict=True))


class Mention(NamedTuple):
    """One finding mention: vocabulary name, section, char span, text and assertion (``historical``
    and ``family``: the ConText attributes, see :mod:`medmm.reports.context`).

    A named tuple (immutable, and several times cheaper to create than a frozen dataclass: a report
    yields a handful per parse).
    """

    finding: str
    section: str
    start: int
    end: int
    text: str
    negated: bool
    uncertain: bool
    historical: bool = False
    family: bool = False

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

    The text is scanned from the first span's start when no statement can reach across it (see
    :func:`_scan_from`), and ASCII text in lower case with one pattern per first word; the result is the one
    of a full case-insensitive scan.

    >>> find_normal_phrase("IMPRESSION: No acute cardiopulmonary abnormality.")
    (12, 48)
    >>> find_normal_phrase("FINDINGS: Chest is normal. IMPRESSION: Normal chest.", [(39, 52)])
    (39, 51)
    """
    ranges = list(spans) or [(0, len(text))]
    start = _scan_from(text, min(ranges)[0])
    if text.isascii():
        return _first_by_word(text.lower(), start, ranges)
    for m in _NORMAL_PHRASES.finditer(text, start):
        if any(a <= m.start() < b for a, b in ranges):
            return m.start(), m.end()
    return None


def _first_by_word(low: str, pos: int, ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
    """``finditer`` of the single pattern from ``pos`` over lower-case ASCII ``low``, as the merged
    matches of :data:`_NORMAL_BY_WORD`, up to the first one starting in ``ranges``.

    Each pattern begins with its word, so a pattern whose word is not in ``low[pos:]`` cannot match:
    only ``no`` (in nearly every report) is always searched; the rarer words are first looked for with
    ``in`` (a fraction of a regex search's cost; most reports have none of them).
    """
    tail = low[pos:] if pos else low
    if "chest" not in tail and "exam" not in tail and "negative" not in tail and "study" not in tail:
        m = _NO_RX.search(low, pos)  # `no` alone (most reports): its own finditer
        while m is not None:
            at = m.start()
            for a, b in ranges:
                if a <= at < b:
                    return at, m.end()
            m = _NO_RX.search(low, m.end())
        return None
    pats = [rx for w, rx in _BY_WORD if w in tail]  # `no` first, always
    found = [rx.search(low, pos) for rx in pats]  # each pattern's next match (or None)
    while True:
        best = None
        for m in found:
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        if best is None:
            return None
        at = best.start()
        for a, b in ranges:
            if a <= at < b:
                return at, best.end()
        end = best.end()  # as finditer: the next match starts at or after this one's end
        found = [
            m if m is None or m.start() >= end else rx.search(low, end)
            for m, rx in zip(found, pats, strict=True)
        ]


def _scan_from(text: str, start: int) -> int:
    """Where a scan for normal statements may begin and find what a scan from 0 finds at ``start`` and
    after: ``start`` when no statement can straddle it, i.e. when the last non-space character before it
    is ASCII and neither a letter nor ``-`` (statements hold only letters, ``-`` and spaces, and begin
    with a letter), as after a section header's colon; else 0.

    >>> _scan_from("INDICATION: cough. FINDINGS: clear", 29), _scan_from("no acute disease", 3)
    (29, 0)
    """
    r = min(start, len(text)) - 1
    while r >= 0 and text[r].isspace():
        r -= 1
    if r < 0:
        return max(0, start)
    c = text[r]
    return start if c.isascii() and not c.isalpha() and c != "-" else 0


_STATUS_NAMES = ("present", "uncertain", "absent")  # by rank: present wins over uncertain over absent


def label_tuples(
    mentions: Sequence[Mention],
    *,
    text: str = "",
    scored: frozenset[str] = DEFAULT_SCORED,
    scored_spans: Sequence[tuple[int, int]] = (),
) -> list[tuple[str, str, str, str | None, int | None, int | None, int]]:
    """The labels of one report as tuples ``(finding, status, evidence, section, start, end, n_mentions)``
    (the core of :func:`label_records`; cheap to turn into columns).

    >>> m = [Mention("edema", "FINDINGS", 0, 5, "edema", negated=True, uncertain=False)]
    >>> label_tuples(m)[0]
    ('edema', 'absent', 'edema', 'FINDINGS', 0, 5, 1)
    """
    # per finding: [status rank, start, best mention, count]; the first mention wins a tie, as with min()
    best: dict[str, list[Any]] = {}
    for m in mentions:
        if m.section not in scored or m.finding == NORMAL or m.historical or m.family:
            continue
        rank = 2 if m.negated else (1 if m.uncertain else 0)
        b = best.get(m.finding)
        if b is None:
            best[m.finding] = [rank, m.start, m, 1]
        else:
            b[3] += 1
            if rank < b[0] or (rank == b[0] and m.start < b[1]):
                b[0], b[1], b[2] = rank, m.start, m
    rows: list[tuple[str, str, str, str | None, int | None, int | None, int]] = []
    abnormal: Mention | None = None
    abnormal_status = ""
    for finding, (rank, _, m, n) in best.items():
        status = _STATUS_NAMES[rank]
        rows.append((finding, status, m.text, m.section, m.start, m.end, n))
        if rank != 2 and (abnormal is None or m.start < abnormal.start):
            abnormal, abnormal_status = m, status
    if abnormal is not None:
        evidence = f"{abnormal.finding} {abnormal_status}: {abnormal.text}"
        rows.append((NORMAL, "absent", evidence, abnormal.section, abnormal.start, abnormal.end, 0))
        return rows
    span = find_normal_phrase(text, scored_spans) if text else None
    if span is not None:
        rows.append((NORMAL, "present", text[span[0] : span[1]], None, span[0], span[1], 1))
    else:
        rows.append((NORMAL, "present", "no abnormal finding present or uncertain", None, None, None, 0))
    return rows


def label_records(
    report_id: str,
    mentions: Sequence[Mention],
    *,
    text: str = "",
    scored: frozenset[str] = DEFAULT_SCORED,
    scored_spans: Sequence[tuple[int, int]] = (),
) -> list[dict[str, Any]]:
    """:func:`report_findings` as plain dicts (``status`` as its string value): the fast path for batches.

    >>> m = [Mention("edema", "FINDINGS", 0, 5, "edema", negated=False, uncertain=False)]
    >>> [(r["finding"], r["status"]) for r in label_records("r1", m)]
    [('edema', 'present'), ('normal', 'absent')]
    """
    rows = label_tuples(mentions, text=text, scored=scored, scored_spans=scored_spans)
    return [_label(report_id, *r) for r in rows]


def _label(
    report_id: str,
    finding: str,
    status: str,
    evidence: str,
    section: str | None = None,
    start: int | None = None,
    end: int | None = None,
    n_mentions: int = 0,
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "finding": finding,
        "status": status,
        "evidence": evidence,
        "section": section,
        "start": start,
        "end": end,
        "n_mentions": n_mentions,
    }


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
    recs = label_records(report_id, mentions, text=text, scored=scored, scored_spans=scored_spans)
    return [ReportLabelRow(**r) for r in recs]

"""Turn one parsed ``Doc`` into entity rows and report labels (sections, locations, measurements).

>>> from medmm.reports.nlp import PipelineSpec, get_pipeline
>>> spec = PipelineSpec()
>>> ents, labels = doc_rows(get_pipeline(spec)("A 12 mm nodule."), "r1", spec)
>>> [(e.label, e.measurement_mm) for e in ents]
[('MEASUREMENT', 12.0), ('FINDING', 12.0)]
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from spacy.attrs import IDX

from medmm.reports._doc_utils import sentence_bounds
from medmm.reports.findings import Mention, report_findings
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon
from medmm.reports.measurements import find_measurements, link_measurements
from medmm.reports.negation import ASSERTION_KEY
from medmm.reports.nlp import PipelineSpec
from medmm.reports.records import EntityRow, ReportLabelRow
from medmm.reports.sections import Section, find_sections, scored_sections, section_at

__all__ = ["doc_rows", "sections_of"]


def sections_of(text: str, known: list[tuple[str, int, int, int]] | None) -> list[Section]:
    """Sections given with the input (one column per section), else detected in the text.

    >>> [s.name for s in sections_of("FINDINGS: clear.", None)]
    ['FINDINGS']
    """
    if known:
        return [Section(*s) for s in known]
    return find_sections(text)


@dataclass(frozen=True)
class _Ent:
    """The attributes of one spaCy entity that rows need, read once (Span attributes are slow)."""

    start: int
    end: int
    start_char: int
    end_char: int
    text: str
    label: str
    ent_id: str
    negated: bool
    uncertain: bool


def _finding_of(ent: _Ent, abbreviations: dict[str, str]) -> tuple[str | None, str | None]:
    """(vocabulary finding, long form) of an entity; abbreviations defined in the text are resolved."""
    lex = load_lexicon()
    long_form = abbreviations.get(ent.text)
    if ent.label == "ANATOMY":
        return None, long_form
    if ent.ent_id and ent.ent_id in lex.kinds:
        return ent.ent_id, long_form
    finding = lex.finding_of(ent.text)
    if finding is None and long_form:
        finding = lex.finding_of(long_form)
    return finding, long_form


def doc_rows(
    doc: Any,
    report_id: str,
    spec: PipelineSpec,
    known_sections: list[tuple[str, int, int, int]] | None = None,
    text: str | None = None,
) -> tuple[list[EntityRow], list[ReportLabelRow]]:
    """Entity rows (incl. one ``MEASUREMENT`` row per size) and report labels of a parsed report.

    ``text`` is ``doc.text`` when the caller has it (spaCy rebuilds ``doc.text`` on every access).
    """
    text = doc.text if text is None else text
    sections = sections_of(text, known_sections)
    scored = scored_sections()
    bounds = sentence_bounds(doc)
    starts = [a for a, _ in bounds]
    idx = doc.to_array(IDX)
    sent_spans = [(int(idx[a]), int(idx[b]) if b < len(doc) else len(text)) for a, b in bounds]
    abbreviations = {a.text: a._.long_form.text for a in getattr(doc._, "abbreviations", [])}
    lexicon_source, model_source = LEXICON_SOURCE, spec.model_source() or LEXICON_SOURCE
    flags = doc.user_data.get(ASSERTION_KEY)
    ents = []
    for e in doc.ents:
        a, b = e.start_char, e.end_char
        neg, unc = flags[(e.start, e.end)] if flags is not None else (e._.negated, e._.uncertain)
        ents.append(_Ent(e.start, e.end, a, b, text[a:b], e.label_, e.ent_id_, bool(neg), bool(unc)))
    sent_of = [max(0, bisect_right(starts, e.start) - 1) for e in ents]
    anatomy = [(i, e) for i, e in enumerate(ents) if e.label == "ANATOMY"]
    rows: list[EntityRow] = []
    mentions: list[Mention] = []
    findings_idx: list[int] = []
    for k, ent in enumerate(ents):
        finding, long_form = _finding_of(ent, abbreviations)
        sent = sent_of[k]
        location = None
        if ent.label != "ANATOMY":
            near = [e for i, e in anatomy if sent_of[i] == sent]
            if near:
                a_ent = min(near, key=lambda x: abs(x.start - ent.start))
                location = a_ent.ent_id or a_ent.text.lower()
            findings_idx.append(len(rows))
        section = section_at(sections, ent.start_char)
        rows.append(
            EntityRow(
                report_id=report_id,
                section=section,
                sentence=sent,
                start=ent.start_char,
                end=ent.end_char,
                text=ent.text,
                label=ent.label,
                negated=ent.negated,
                uncertain=ent.uncertain,
                finding=finding,
                long_form=long_form,
                location=location,
                source=lexicon_source if (ent.ent_id and spec.lexicon) else model_source,
            )
        )
        if finding is not None:
            mentions.append(
                Mention(finding, section, ent.start_char, ent.end_char, ent.text, ent.negated, ent.uncertain)
            )
    measurements = find_measurements(text)
    links = link_measurements(measurements, [(rows[i].start, rows[i].end) for i in findings_idx], sent_spans)
    for mi, m in enumerate(measurements):
        linked = rows[findings_idx[links[mi]]] if mi in links else None
        fields = dict(
            measurement_mm=m.size_mm,
            measurement_dims_mm=list(m.values_mm),
            measurement_kind=m.kind,
            measurement_text=m.text,
        )
        if linked is not None:
            rows[findings_idx[links[mi]]] = linked.model_copy(update=fields)
        sent = next((i for i, (a, b) in enumerate(sent_spans) if a <= m.start < b), 0)
        rows.append(
            EntityRow(
                report_id=report_id,
                section=section_at(sections, m.start),
                sentence=sent,
                start=m.start,
                end=m.end,
                text=m.text,
                label="MEASUREMENT",
                negated=linked.negated if linked else False,
                uncertain=linked.uncertain if linked else False,
                finding=linked.finding if linked else None,
                location=linked.location if linked else None,
                source=LEXICON_SOURCE,
                **fields,
            )
        )
    rows.sort(key=lambda r: (r.start, r.end))
    scored_spans = [(s.body_start, s.end) for s in sections if s.name in scored]
    labels = report_findings(report_id, mentions, text=text, scored=scored, scored_spans=scored_spans)
    labels = [
        lab.model_copy(update={"section": section_at(sections, lab.start)})
        if lab.section is None and lab.start is not None
        else lab
        for lab in labels
    ]
    return rows, labels

"""Turn one parsed ``Doc`` into entity rows and report labels (sections, locations, measurements).

>>> from medmm.reports.nlp import PipelineSpec, get_pipeline
>>> spec = PipelineSpec()
>>> ents, labels = doc_rows(get_pipeline(spec)("A 12 mm nodule."), "r1", spec)
>>> [(e.label, e.measurement_mm) for e in ents]
[('MEASUREMENT', 12.0), ('FINDING', 12.0)]
"""

from __future__ import annotations

from typing import Any

from medmm.reports._doc_utils import sentence_bounds, sentence_of
from medmm.reports.findings import Mention, report_findings
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon
from medmm.reports.measurements import find_measurements, link_measurements
from medmm.reports.nlp import PipelineSpec, source_of
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


def _finding_of(ent: Any, abbreviations: dict[str, str]) -> tuple[str | None, str | None]:
    """(vocabulary finding, long form) of an entity; abbreviations defined in the text are resolved."""
    lex = load_lexicon()
    long_form = abbreviations.get(ent.text)
    if ent.label_ == "ANATOMY":
        return None, long_form
    if ent.ent_id_ and ent.ent_id_ in lex.kinds:
        return ent.ent_id_, long_form
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
    sent_spans = [(doc[a].idx, doc[b - 1].idx + len(doc[b - 1].text)) for a, b in bounds]
    abbreviations = {a.text: a._.long_form.text for a in getattr(doc._, "abbreviations", [])}
    ents = list(doc.ents)
    anatomy = [e for e in ents if e.label_ == "ANATOMY"]
    rows: list[EntityRow] = []
    mentions: list[Mention] = []
    findings_idx: list[int] = []
    for ent in ents:
        finding, long_form = _finding_of(ent, abbreviations)
        sent = sentence_of(bounds, ent.start)
        location = None
        if ent.label_ != "ANATOMY":
            near = [a for a in anatomy if sentence_of(bounds, a.start) == sent]
            if near:
                a = min(near, key=lambda a: abs(a.start - ent.start))
                location = a.ent_id_ or a.text.lower()
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
                label=ent.label_,
                negated=bool(ent._.negated),
                uncertain=bool(ent._.uncertain),
                finding=finding,
                long_form=long_form,
                location=location,
                source=source_of(ent, spec),
            )
        )
        if finding is not None:
            mentions.append(
                Mention(
                    finding,
                    section,
                    ent.start_char,
                    ent.end_char,
                    ent.text,
                    bool(ent._.negated),
                    bool(ent._.uncertain),
                )
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

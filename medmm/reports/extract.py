"""Turn one parsed ``Doc`` into entity rows and report labels (sections, locations, measurements).

>>> from medmm.reports.nlp import PipelineSpec, get_pipeline
>>> spec = PipelineSpec()
>>> ents, labels = doc_rows(get_pipeline(spec)("A 12 mm nodule."), "r1", spec)
>>> [(e.label, e.measurement_mm) for e in ents]
[('MEASUREMENT', 12.0), ('FINDING', 12.0)]

:func:`doc_records` is the fast path used by ``parse``: plain dicts, no per-row validation (the
tables are validated once, as frames); :func:`doc_rows` wraps it in typed records.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import numpy as np
from spacy.attrs import IDX, LENGTH, SENT_START

from medmm.reports.findings import Mention, label_records
from medmm.reports.laterality import sides_of
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon
from medmm.reports.measurements import find_measurements, link_measurements
from medmm.reports.negation import ASSERTION_KEY
from medmm.reports.nlp import PipelineSpec
from medmm.reports.records import EntityRow, ReportLabelRow
from medmm.reports.sections import Section, find_sections, scored_sections

__all__ = ["ENTITY_COLUMNS", "doc_records", "doc_rows", "sections_of"]

ENTITY_COLUMNS = list(EntityRow.model_fields)


def sections_of(text: str, known: list[tuple[str, int, int, int]] | None) -> list[Section]:
    """Sections given with the input (one column per section), else detected in the text.

    >>> [s.name for s in sections_of("FINDINGS: clear.", None)]
    ['FINDINGS']
    """
    if known:
        return [Section(*s) for s in known]
    return find_sections(text)


def _section_at(starts: list[int], names: list[str], offset: int) -> str:
    """:func:`~medmm.reports.sections.section_at` over precomputed section starts (bisect)."""
    if not names:
        return "BODY"
    return names[max(0, bisect_right(starts, offset) - 1)]


def _entities(doc: Any) -> tuple[list[tuple[int, int, int, int, str, str]], list[int], list[int]]:
    """Entities ``(token start, token end, char start, char end, label, pattern id)``, the sentence of
    each, and the first token of every sentence (attributes read once: ``Span`` access is slow)."""
    n = len(doc)
    if n == 0:
        return [], [], []
    arr = doc.to_array([SENT_START, IDX, LENGTH])
    flags = arr[:, 0]
    sent_starts = [0, *(int(i) for i in np.flatnonzero(flags == 1) if i > 0)]
    idx, end = arr[:, 1].tolist(), (arr[:, 1] + arr[:, 2]).tolist()  # char start / end of each token
    # `id_` is the pattern id of an entity span (`ent_id_` finds the same via the syntactic root: slow);
    # char offsets from the token arrays (`Span.start_char` looks tokens up one by one)
    ents = [(e.start, e.end, idx[e.start], end[e.end - 1], e.label_, e.id_) for e in doc.ents]
    sent_of = [bisect_right(sent_starts, e[0]) - 1 for e in ents]
    return ents, sent_of, sent_starts


def _sentence_chars(doc: Any, sent_starts: list[int], n_chars: int) -> list[tuple[int, int]]:
    """Char spans of the sentences (for measurements)."""
    idx = doc.to_array(IDX)
    return list(zip(idx[sent_starts].tolist(), [*idx[sent_starts[1:]].tolist(), n_chars], strict=True))


def doc_records(
    doc: Any,
    report_id: str,
    spec: PipelineSpec,
    known_sections: list[tuple[str, int, int, int]] | None = None,
    text: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Entity rows, report-label rows (plain dicts, JSON values) and the section count of one report.

    ``text`` is ``doc.text`` when the caller has it (spaCy rebuilds ``doc.text`` on every access).

    >>> from medmm.reports.nlp import get_pipeline
    >>> ents, labels, n = doc_records(get_pipeline(PipelineSpec())("No effusion."), "r1", PipelineSpec())
    >>> [(e["finding"], e["negated"]) for e in ents], labels[-1]["status"], n
    ([('pleural effusion', True)], 'present', 1)
    """
    text = doc.text if text is None else text
    sections = sections_of(text, known_sections)
    sec_starts = [s.start for s in sections]
    sec_names = [s.name for s in sections]
    scored = scored_sections()
    flags = doc.user_data.get(ASSERTION_KEY)
    lex = load_lexicon()
    kinds, phrases = lex.kinds, lex.phrases
    lexicon_source, model_source = LEXICON_SOURCE, spec.model_source() or LEXICON_SOURCE
    abbreviations = {a.text: a._.long_form.text for a in getattr(doc._, "abbreviations", [])}
    raw, sent_of, sent_starts = _entities(doc)
    if flags is None:  # pipeline without the assertion component's dict: read the Span extensions
        flags = {
            (e.start, e.end): (e._.negated, e._.uncertain, e._.historical, e._.experiencer == "family")
            for e in doc.ents
        }
    anatomy: dict[int, list[tuple[int, str]]] = {}
    for k, r in enumerate(raw):
        if r[4] == "ANATOMY":
            anatomy.setdefault(sent_of[k], []).append((r[0], r[5] or text[r[2] : r[3]].lower()))
    rows: list[dict[str, Any]] = []
    mentions: list[Mention] = []
    findings_idx: list[int] = []
    sides = sides_of(text, [(r[2], r[3]) for r in raw if r[4] != "ANATOMY"])
    n_sided = 0
    for k, (tok_a, tok_b, a, b, label, ent_id) in enumerate(raw):
        neg, unc, hist, fam = (bool(x) for x in flags[(tok_a, tok_b)])
        etext = text[a:b]
        long_form = abbreviations.get(etext) if abbreviations else None
        finding: str | None = None
        location: str | None = None
        side: str | None = None
        if label != "ANATOMY":
            side = sides[n_sided]
            n_sided += 1
            if ent_id and ent_id in kinds:
                finding = ent_id
            else:
                finding = phrases.get(" ".join(etext.lower().split()))
                if finding is None and long_form:
                    finding = phrases.get(" ".join(long_form.lower().split()))
            near = anatomy.get(sent_of[k])
            if near:
                location = min(near, key=lambda x: abs(x[0] - tok_a))[1]
            findings_idx.append(len(rows))
        section = _section_at(sec_starts, sec_names, a)
        rows.append(
            {
                "report_id": report_id,
                "section": section,
                "sentence": sent_of[k],
                "start": a,
                "end": b,
                "text": etext,
                "label": label,
                "negated": neg,
                "uncertain": unc,
                "historical": hist,
                "experiencer": "family" if fam else "patient",
                "finding": finding,
                "long_form": long_form,
                "location": location,
                "laterality": side,
                "measurement_mm": None,
                "measurement_dims_mm": None,
                "measurement_kind": None,
                "measurement_text": None,
                "source": lexicon_source if (ent_id and spec.lexicon) else model_source,
            }
        )
        if finding is not None:
            mentions.append(Mention(finding, section, a, b, etext, neg, unc, hist, fam))
    measurements = find_measurements(text)
    if measurements:
        _add_measurements(
            measurements,
            _sentence_chars(doc, sent_starts, len(text)),
            rows,
            findings_idx,
            report_id,
            (sec_starts, sec_names),
        )
        rows.sort(key=lambda r: (r["start"], r["end"]))
    scored_spans = [(s.body_start, s.end) for s in sections if s.name in scored]
    labels = label_records(report_id, mentions, text=text, scored=scored, scored_spans=scored_spans)
    for lab in labels:
        if lab["section"] is None and lab["start"] is not None:
            lab["section"] = _section_at(sec_starts, sec_names, lab["start"])
    return rows, labels, len(sections)


def _add_measurements(
    measurements: list[Any],
    sent_spans: list[tuple[int, int]],
    rows: list[dict[str, Any]],
    findings_idx: list[int],
    report_id: str,
    secs: tuple[list[int], list[str]],
) -> None:
    """Fill the measurement columns of the findings they size and add one ``MEASUREMENT`` row each."""
    spans = [(rows[i]["start"], rows[i]["end"]) for i in findings_idx]
    links = link_measurements(measurements, spans, sent_spans)
    for mi, m in enumerate(measurements):
        linked = rows[findings_idx[links[mi]]] if mi in links else None
        fields = {
            "measurement_mm": m.size_mm,
            "measurement_dims_mm": list(m.values_mm),
            "measurement_kind": m.kind,
            "measurement_text": m.text,
        }
        if linked is not None:
            linked.update(fields)
        sent = next((i for i, (a, b) in enumerate(sent_spans) if a <= m.start < b), 0)
        rows.append(
            {
                "report_id": report_id,
                "section": _section_at(*secs, m.start),
                "sentence": sent,
                "start": m.start,
                "end": m.end,
                "text": m.text,
                "label": "MEASUREMENT",
                "negated": linked["negated"] if linked else False,
                "uncertain": linked["uncertain"] if linked else False,
                "historical": linked["historical"] if linked else False,
                "experiencer": linked["experiencer"] if linked else "patient",
                "finding": linked["finding"] if linked else None,
                "long_form": None,
                "location": linked["location"] if linked else None,
                "laterality": linked["laterality"] if linked else None,
                **fields,
                "source": LEXICON_SOURCE,
            }
        )


def doc_rows(
    doc: Any,
    report_id: str,
    spec: PipelineSpec,
    known_sections: list[tuple[str, int, int, int]] | None = None,
    text: str | None = None,
) -> tuple[list[EntityRow], list[ReportLabelRow]]:
    """Entity rows (incl. one ``MEASUREMENT`` row per size) and report labels of a parsed report, typed.

    ``text`` is ``doc.text`` when the caller has it (spaCy rebuilds ``doc.text`` on every access).
    """
    ents, labels, _ = doc_records(doc, report_id, spec, known_sections, text)
    return [EntityRow(**e) for e in ents], [ReportLabelRow(**lab) for lab in labels]

"""Entity and label columns of a whole batch of parsed reports at once (the ``parse`` fast path).

:func:`~medmm.reports.extract.doc_records` turns one ``Doc`` into row dicts; per report it creates
``Span`` objects, bisects sections and sentences and fills a dict of 17 fields per entity. Here the
token attributes of every ``Doc`` of a batch are read with one ``Doc.to_array`` call each, stacked,
and entity bounds, char offsets, sentences, sections and nearest locations are found for the whole
batch with numpy; the result is built column by column as Arrow arrays. Only the few string steps
(entity text, finding name) loop in Python, once per entity.

The rows are the same as :func:`~medmm.reports.extract.doc_records` gives (tested on the IU
reports). Reports with a measurement, an abbreviation or without the assertion component's flags
(rare) are done by ``doc_records`` and their rows appended.

>>> from medmm.reports.nlp import PipelineSpec, get_pipeline
>>> spec = PipelineSpec()
>>> texts = ["No pleural effusion.", "Mild cardiomegaly in the left lung."]
>>> ents, labels, n_sections = batch_tables(list(get_pipeline(spec).pipe(texts)), ["a", "b"], texts,
...                                         [None, None], spec)
>>> ents.select(["report_id", "finding", "negated", "location"]).to_pylist()[1]
{'report_id': 'b', 'finding': 'cardiomegaly', 'negated': False, 'location': 'left lung'}
>>> n_sections
[1, 1]
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from spacy.attrs import ENT_ID, ENT_IOB, ENT_TYPE, IDX, LENGTH, SENT_START

from medmm.reports.extract import doc_records
from medmm.reports.findings import Mention, label_tuples
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon
from medmm.reports.measurements import has_measurement
from medmm.reports.negation import ASSERTION_KEY
from medmm.reports.nlp import PipelineSpec
from medmm.reports.records import EntityRow
from medmm.reports.sections import find_sections, scored_sections

__all__ = ["ENTITY_SCHEMA", "LABEL_SCHEMA", "batch_tables"]

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
#: Arrow schema of the entity rows (the columns of :class:`~medmm.reports.records.EntityRow`).
ENTITY_SCHEMA = pa.schema(
    [
        ("report_id", _S),
        ("section", _S),
        ("sentence", _I),
        ("start", _I),
        ("end", _I),
        ("text", _S),
        ("label", _S),
        ("negated", _B),
        ("uncertain", _B),
        ("finding", _S),
        ("long_form", _S),
        ("location", _S),
        ("measurement_mm", _F),
        ("measurement_dims_mm", pa.list_(_F)),
        ("measurement_kind", _S),
        ("measurement_text", _S),
        ("source", _S),
    ]
)
#: Arrow schema of the report-label rows (the columns of :class:`~medmm.reports.records.ReportLabelRow`).
LABEL_SCHEMA = pa.schema(
    [
        ("report_id", _S),
        ("finding", _S),
        ("status", _S),
        ("evidence", _S),
        ("section", _S),
        ("start", _I),
        ("end", _I),
        ("n_mentions", _I),
    ]
)
assert ENTITY_SCHEMA.names == list(EntityRow.model_fields)
_ATTRS = [ENT_IOB, ENT_TYPE, ENT_ID, IDX, LENGTH, SENT_START]
_IOB_B, _IOB_I = 3, 1
_EMPTY = np.zeros((0, len(_ATTRS)), dtype=np.uint64)
_SECTION_STRIDE = 1 << 40  # > any report length: (report, char) pairs as one sortable integer


def _sections(text: str, known: list[tuple[str, int, int, int]] | None) -> list[tuple[str, int, int, int]]:
    """``(name, start, body_start, end)`` of each section (given with the input, else detected)."""
    if known:
        return known
    return [(s.name, s.start, s.body_start, s.end) for s in find_sections(text)]


def _abbreviations_key(doc: Any) -> Any:
    """``doc.user_data`` key of scispaCy's ``Doc._.abbreviations`` (read directly: building ``doc._``
    for every report costs more), or ``None`` when it cannot be read that way (then ``getattr``).

    The detector appends through the attribute, which stores its list under this key first; an absent
    key therefore means no abbreviation.
    """
    try:
        underscore = doc._
        default, method, getter, _ = underscore._extensions["abbreviations"]
        key = underscore._get_key("abbreviations")
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return key if method is None and getter is None and not default else None


def batch_tables(
    docs: Iterable[Any],
    report_ids: Sequence[str],
    texts: Sequence[str],
    known_sections: Sequence[list[tuple[str, int, int, int]] | None],
    spec: PipelineSpec,
) -> tuple[pa.Table, pa.Table, list[int]]:
    """Entity table, label table and the section count of each report of a parsed batch.

    Parameters
    ----------
    docs
        The parsed reports, in order: best the ``nlp.pipe`` generator itself, as each ``Doc`` is read
        (one ``to_array``) and dropped as it comes out, while its memory is still in the CPU caches.
    report_ids, texts, known_sections
        Per report: its id, the text the doc was made from, and its known sections (or ``None``).
    spec
        The pipeline spec (names the ``source`` of each entity).

    Returns
    -------
    entities, labels, n_sections
        Arrow tables with :data:`ENTITY_SCHEMA` / :data:`LABEL_SCHEMA` (rows grouped by report, each
        report's rows in the order of :func:`~medmm.reports.extract.doc_records`) and one section
        count per report.
    """
    lex = load_lexicon()
    kinds, phrases = lex.kinds, lex.phrases
    scored = scored_sections()
    model_source = spec.model_source() or LEXICON_SOURCE
    strings: Any = {}
    names: dict[int, str] = {0: ""}

    def name_of(h: int) -> str:
        s = names.get(h)
        if s is None:
            s = names[h] = strings[h]
        return s

    slow_rows: list[dict[str, Any]] = []  # entity rows of the reports done by doc_records
    slow_labels: list[tuple[Any, ...]] = []
    abbr_key: Any = False  # not looked up yet
    fast: list[int] = []
    arrays: list[np.ndarray] = []
    flags_of: list[dict[tuple[int, int], tuple[bool, bool]]] = []
    sec_of: list[list[tuple[str, int, int, int]]] = []
    for k, doc in enumerate(docs):
        secs = _sections(texts[k], known_sections[k])
        sec_of.append(secs)
        flags = doc.user_data.get(ASSERTION_KEY)
        if abbr_key is False:
            abbr_key = _abbreviations_key(doc)
        abbr = doc.user_data.get(abbr_key) if abbr_key else getattr(doc._, "abbreviations", None)
        if flags is None or abbr or has_measurement(texts[k]):
            e, lab, _ = doc_records(doc, report_ids[k], spec, known_sections[k], text=texts[k])
            slow_rows += e
            slow_labels += [tuple(x.values()) for x in lab]
        else:
            fast.append(k)
            flags_of.append(flags)
            arrays.append(doc.to_array(_ATTRS).reshape(-1, len(_ATTRS)) if len(doc) else _EMPTY)
            strings = doc.vocab.strings
    if len(sec_of) != len(report_ids):
        raise ValueError(f"batch_tables: {len(sec_of)} docs for {len(report_ids)} reports")
    ent_cols, lab_rows = _fast_columns(
        flags_of, fast, arrays, report_ids, texts, sec_of, kinds, phrases, scored, model_source, spec, name_of
    )
    lab_rows += slow_labels
    ents = pa.concat_tables([ent_cols, pa.Table.from_pylist(slow_rows, schema=ENTITY_SCHEMA)])
    columns = list(zip(*lab_rows, strict=True)) if lab_rows else [()] * len(LABEL_SCHEMA)
    labels = pa.table(
        [pa.array(c, f.type) for c, f in zip(columns, LABEL_SCHEMA, strict=True)], schema=LABEL_SCHEMA
    )
    return ents, labels, [len(s) for s in sec_of]


def _fast_columns(
    flags_of: list[dict[tuple[int, int], tuple[bool, bool]]],
    fast: list[int],
    arrays: list[np.ndarray],
    report_ids: Sequence[str],
    texts: Sequence[str],
    sec_of: list[list[tuple[str, int, int, int]]],
    kinds: dict[str, str],
    phrases: dict[str, str],
    scored: frozenset[str],
    model_source: str,
    spec: PipelineSpec,
    name_of: Any,
) -> tuple[pa.Table, list[tuple[Any, ...]]]:
    """Entity columns and label rows of the reports in ``fast`` (see :func:`batch_tables`)."""
    n_tok = np.array([len(a) for a in arrays], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(n_tok)])  # first token of each report (global index)
    labels: list[tuple[Any, ...]] = []
    if not len(arrays) or first[-1] == 0:
        for k in fast:
            labels += _labels(report_ids[k], [], texts[k], sec_of[k], scored)
        return pa.table({f.name: pa.nulls(0, f.type) for f in ENTITY_SCHEMA}, schema=ENTITY_SCHEMA), labels
    tok = np.concatenate(arrays).view(np.int64)
    iob = tok[:, 0]
    starts = np.flatnonzero((iob == _IOB_B) & (tok[:, 1] != 0))  # as Doc.ents: B with a label
    bounds = np.append(np.flatnonzero(iob != _IOB_I), len(iob))
    ends = bounds[np.searchsorted(bounds, starts, side="right")]
    rep = np.searchsorted(first, starts, side="right") - 1  # index into `fast`
    char_a = tok[starts, 3]
    char_b = tok[ends - 1, 3] + tok[ends - 1, 4]
    is_sent = tok[:, 5] == 1
    is_sent[first[:-1][n_tok > 0]] = True
    sent_global = np.cumsum(is_sent) - 1
    sent = sent_global[starts] - sent_global[first[rep]]
    tok_a = starts - first[rep]
    tok_b = ends - first[rep]
    label_h = tok[starts, 1].view(np.uint64).tolist()
    id_h = tok[starts, 2].view(np.uint64).tolist()
    label_s = [name_of(h) for h in label_h]
    id_s = [name_of(h) for h in id_h]
    # sections: (report, char) as one integer, searched in the sorted section starts of all reports
    sec_keys = [j * _SECTION_STRIDE + s[1] for j, k in enumerate(fast) for s in sec_of[k]]
    sec_names = [s[0] for k in fast for s in sec_of[k]]
    n_secs = np.array([len(sec_of[k]) for k in fast], dtype=np.int64)
    ent_keys = rep * _SECTION_STRIDE + char_a
    sec_pos = np.searchsorted(np.array(sec_keys, dtype=np.int64), ent_keys, side="right") - 1
    sec_first = np.concatenate([[0], np.cumsum(n_secs)])[:-1]
    sec_pos = np.maximum(sec_pos, sec_first[rep])  # before the first section: the first one
    section = [
        sec_names[p] if n else "BODY" for p, n in zip(sec_pos.tolist(), n_secs[rep].tolist(), strict=True)
    ]
    # nearest ANATOMY entity of the same sentence (token distance, the earlier one on a tie)
    anat = np.array([s == "ANATOMY" for s in label_s], dtype=bool)
    location: list[str | None] = [None] * len(starts)
    a_idx = np.flatnonzero(anat)
    if len(a_idx):
        a_start, a_sent = starts[a_idx], sent_global[starts[a_idx]]
        f_idx = np.flatnonzero(~anat)
        pos = np.searchsorted(a_start, starts[f_idx])
        prev, nxt = np.maximum(pos - 1, 0), np.minimum(pos, len(a_idx) - 1)
        f_sent = sent_global[starts[f_idx]]
        ok_prev = (pos > 0) & (a_sent[prev] == f_sent)
        ok_next = (pos < len(a_idx)) & (a_sent[nxt] == f_sent)
        d_prev = starts[f_idx] - a_start[prev]
        d_next = a_start[nxt] - starts[f_idx]
        use_prev = ok_prev & (~ok_next | (d_prev <= d_next))
        use_next = ok_next & ~use_prev
        choice = np.where(use_prev, a_idx[prev], np.where(use_next, a_idx[nxt], -1))
        a_name: dict[int, str] = {}
        for i in a_idx.tolist():
            j = int(rep[i])
            a_name[i] = id_s[i] or texts[fast[j]][char_a[i] : char_b[i]].lower()
        for fi, c in zip(f_idx.tolist(), choice.tolist(), strict=True):
            if c >= 0:
                location[fi] = a_name[c]
    # per entity: text, assertion flags, finding; mentions per report for the labels
    rep_l, a_l, b_l, ta_l, tb_l = (
        rep.tolist(),
        char_a.tolist(),
        char_b.tolist(),
        tok_a.tolist(),
        tok_b.tolist(),
    )
    n = len(rep_l)
    text_c: list[str] = [""] * n
    neg_c: list[bool] = [False] * n
    unc_c: list[bool] = [False] * n
    finding_c: list[str | None] = [None] * n
    mentions: list[list[Mention]] = [[] for _ in fast]
    lexicon = spec.lexicon
    for i in range(n):
        j = rep_l[i]
        t = texts[fast[j]][a_l[i] : b_l[i]]
        text_c[i] = t
        neg, unc = flags_of[j][(ta_l[i], tb_l[i])]
        neg, unc = bool(neg), bool(unc)
        neg_c[i], unc_c[i] = neg, unc
        if label_s[i] != "ANATOMY":
            ent_id = id_s[i]
            finding = ent_id if ent_id and ent_id in kinds else phrases.get(" ".join(t.lower().split()))
            if finding is not None:
                finding_c[i] = finding
                mentions[j].append(Mention(finding, section[i], a_l[i], b_l[i], t, neg, unc))
    for j, k in enumerate(fast):
        labels += _labels(report_ids[k], mentions[j], texts[k], sec_of[k], scored)
    source = [LEXICON_SOURCE if (e and lexicon) else model_source for e in id_s]
    rid = pa.array([report_ids[k] for k in fast], _S).take(pa.array(rep))
    cols = {
        "report_id": rid,
        "section": pa.array(section, _S),
        "sentence": pa.array(sent),
        "start": pa.array(char_a),
        "end": pa.array(char_b),
        "text": pa.array(text_c, _S),
        "label": pa.array(label_s, _S),
        "negated": pa.array(neg_c, _B),
        "uncertain": pa.array(unc_c, _B),
        "finding": pa.array(finding_c, _S),
        "long_form": pa.nulls(n, _S),
        "location": pa.array(location, _S),
        "measurement_mm": pa.nulls(n, _F),
        "measurement_dims_mm": pa.nulls(n, pa.list_(_F)),
        "measurement_kind": pa.nulls(n, _S),
        "measurement_text": pa.nulls(n, _S),
        "source": pa.array(source, _S),
    }
    return pa.table(cols, schema=ENTITY_SCHEMA), labels


def _labels(
    report_id: str,
    mentions: list[Mention],
    text: str,
    secs: list[tuple[str, int, int, int]],
    scored: frozenset[str],
) -> list[tuple[Any, ...]]:
    """Label rows (tuples in :data:`LABEL_SCHEMA` order) of one report, as ``doc_records`` makes them."""
    scored_spans = [(s[2], s[3]) for s in secs if s[0] in scored]
    out = []
    for finding, status, evidence, section, start, end, n in label_tuples(
        mentions, text=text, scored=scored, scored_spans=scored_spans
    ):
        if section is None and start is not None:
            pos = bisect_right([s[1] for s in secs], start) - 1
            section = secs[max(0, pos)][0] if secs else "BODY"
        out.append((report_id, finding, status, evidence, section, start, end, n))
    return out

"""Entity and label columns of a whole batch of parsed reports at once (the ``parse`` fast path).

:func:`~medmm.reports.extract.doc_records` turns one ``Doc`` into row dicts; per report it creates
``Span`` objects, bisects sections and sentences and fills a dict of 17 fields per entity. Here the
``TokenC`` array of every ``Doc`` of a batch is copied in one piece as it streams out of ``nlp.pipe``
(:mod:`medmm.reports.token_structs`; or read with one ``Doc.to_array`` call where that reader does not
apply), and per chunk of docs the token fields are read where needed; entity bounds, char offsets,
sentences, sections and nearest locations are found for the whole batch with numpy; label and
pattern-id hashes are named once per distinct value, the assertion flags are read in entity order,
and the columns are built with Arrow ``take``. Labels come from
:mod:`medmm.reports.batch_labels`, sizes from :mod:`medmm.reports.batch_measurements`.

The rows are the same as :func:`~medmm.reports.extract.doc_records` gives (tested on the IU
reports). Reports with an abbreviation or without the assertion component's flags (rare) are done by
``doc_records`` and their rows appended.

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
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from medmm.reports.batch_labels import LABEL_SCHEMA, batch_labels
from medmm.reports.batch_measurements import batch_measurements, may_hold_size
from medmm.reports.batch_texts import Slices, entity_texts
from medmm.reports.entity_table import ENTITY_SCHEMA, Coded, EntityColumns, entity_table, take_names
from medmm.reports.extract import doc_records
from medmm.reports.findings import find_normal_phrase
from medmm.reports.laterality import LATERALITIES, batch_sides
from medmm.reports.lexicon import LEXICON_SOURCE, load_lexicon
from medmm.reports.negation import ASSERTION_KEY
from medmm.reports.nlp import PipelineSpec
from medmm.reports.records import EntityRow
from medmm.reports.sections import find_sections, scored_sections
from medmm.reports.token_structs import ArrayTokens, TokenBuffer, struct_reader_ok

__all__ = ["ENTITY_SCHEMA", "LABEL_SCHEMA", "batch_tables"]

assert ENTITY_SCHEMA.names == list(EntityRow.model_fields)
_IOB_B, _IOB_I = 3, 1
#: assertion flags ``(negated, uncertain, historical, family)`` -> code ``negated | uncertain << 1 | ...``
_FLAG_CODE = {(bool(c & 1), bool(c & 2), bool(c & 4), bool(c & 8)): c for c in range(16)}
_SECTION_STRIDE = 1 << 40  # > any report length: (report, char) pairs as one sortable integer
#: Docs whose tokens are reduced to entity columns at once (:meth:`_Batch.reduce`): small enough
#: for their tokens to stay in the CPU caches, large enough for numpy's per-call cost.
CHUNK = 128
_ENT_COLUMNS = ("rep", "tok", "tok_a", "tok_b", "label", "ent_id", "char_a", "char_b", "sent_global", "sent")


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
        (its tokens copied) and dropped as it comes out, while its memory is still in the CPU caches.
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
    slow_rows: list[dict[str, Any]] = []  # rows of the reports done by doc_records
    slow_labels: list[dict[str, Any]] = []
    abbr_key: Any = False  # not looked up yet
    batch = _Batch(texts)
    fast, arrays, codes, spans, n_flags = batch.fast, batch.arrays, batch.codes, batch.spans, batch.n_flags
    code_of = _FLAG_CODE.__getitem__
    reduce = batch.reduce
    k = -1
    key, next_reduce = ASSERTION_KEY, CHUNK  # locals: read for every doc
    doc_type: Any = None  # the Doc type whose TokenC arrays are copied (else to_array)
    add_tokens: Any = None
    # per doc, only what needs the Doc (it is dropped right after): its tokens (TokenC structs copied
    # while they are in the CPU caches, or a token array) and its assertion flags as 2-bit codes and
    # token spans in flat lists of (cached) small ints: no Python object per entity is kept alive
    for k, doc in enumerate(docs):
        user_data = doc.user_data
        flags = user_data.get(key)
        if abbr_key is False:
            abbr_key = _abbreviations_key(doc)
            batch.strings = doc.vocab.strings
            if struct_reader_ok(doc.vocab):
                doc_type, batch.tokens = type(doc), TokenBuffer()
                add_tokens = batch.tokens.add
        abbr = user_data.get(abbr_key) if abbr_key else getattr(doc._, "abbreviations", None)
        if flags is not None and not abbr and (doc_type is None or type(doc) is doc_type):
            n_spans = len(spans)  # 2 x len(codes)
            try:  # {(start, end): (negated, uncertain, historical, family)}, one entry per entity in order
                codes += map(code_of, flags.values())
                spans += chain.from_iterable(flags)
                ok = len(spans) - n_spans == 2 * len(flags)
            except (KeyError, TypeError, OverflowError):
                ok = False
            if not ok:  # not what medmm's component writes: this report goes to doc_records
                del codes[n_spans >> 1 :], spans[n_spans:]
            else:
                n_flags.append(len(flags))
                fast.append(k)
                if add_tokens is not None:
                    add_tokens(doc)
                else:
                    arrays.append(doc.to_array(ArrayTokens.ATTRS))
                if len(fast) == next_reduce:
                    reduce()
                    next_reduce += CHUNK
                continue
        e, lab, _ = doc_records(doc, report_ids[k], spec, known_sections[k], text=texts[k])
        slow_rows += e
        slow_labels += lab
    n_docs = k + 1
    if n_docs != len(report_ids):
        raise ValueError(f"batch_tables: {n_docs} docs for {len(report_ids)} reports")
    reduce()
    all_sections = [known_sections[k] or _detected_sections(texts[k]) for k in range(n_docs)]
    n_sections = [len(s) for s in all_sections]
    batch.sections = [all_sections[k] for k in fast]
    ents, labels = _fast_tables(batch, report_ids, texts, spec)
    if slow_rows:
        ents = pa.concat_tables([ents, pa.Table.from_pylist(slow_rows, schema=ENTITY_SCHEMA)])
    if slow_labels:
        labels = pa.concat_tables([labels, pa.Table.from_pylist(slow_labels, schema=LABEL_SCHEMA)])
    return ents, labels, n_sections


def _detected_sections(text: str) -> list[tuple[str, int, int, int]]:
    """``(name, start, body_start, end)`` of each section detected in ``text``."""
    return [(s.name, s.start, s.body_start, s.end) for s in find_sections(text)]


class _Batch:
    """What the fast path keeps of each of its reports while the docs stream by.

    The tokens of every :data:`CHUNK` docs (``TokenC`` structs copied into :attr:`tokens`, or
    ``to_array`` arrays) are reduced to a few numbers per entity (:meth:`reduce`) and dropped, so the
    batch never holds its tokens in memory.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.fast: list[int] = []  # index of the report in the batch
        self.measured: list[int] = []  # index into `fast` of the reports that may hold a size
        self.sections: list[list[tuple[str, int, int, int]]] = []
        self.codes: list[int] = []  # assertion flags of each entity, in order (_FLAG_CODE)
        self.spans: list[int] = []  # (start, end) token span of each entity of the flags, flattened
        self.n_flags: list[int] = []  # entities with flags per report
        self.tokens: TokenBuffer | None = None  # TokenC structs of the docs not reduced yet, or
        self.arrays: list[np.ndarray] = []  # their token arrays (Doc.to_array)
        self.n_reduced = 0  # docs reduced (a prefix of `fast`)
        self.strings: Any = None
        self.sent_chars: dict[int, list[int]] = {}  # char offset of each sentence of measured reports
        self.n_tokens = 0  # tokens of the reduced docs (their global token offset)
        self.n_sents = 0  # sentences of the reduced docs
        self.ents: list[list[np.ndarray]] = []  # per reduced chunk: the columns of _ENT_COLUMNS

    def reduce(self) -> None:
        """Entity columns of the docs not reduced yet, whose tokens are then dropped."""
        rep0 = self.n_reduced  # index into `fast` of the first of these docs
        n = len(self.fast) - rep0
        if not n:
            return
        self.n_reduced += n
        chunk = [self.texts[k] for k in self.fast[rep0:]]
        tokens = self.tokens.read(list(map(len, chunk))) if self.tokens else ArrayTokens(self.arrays)
        n_tok = tokens.counts
        first = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_tok, out=first[1:])  # first token of each report (chunk index)
        iob = tokens.iob
        begins = np.flatnonzero(iob == _IOB_B)
        label = tokens.ent_type(begins)
        has_label = label != 0
        starts, label = begins[has_label], label[has_label]  # as Doc.ents: B with a label
        bounds = np.append(np.flatnonzero(iob != _IOB_I), len(iob))
        ends = bounds[np.searchsorted(bounds, starts, side="right")]
        rep = np.searchsorted(first, starts, side="right") - 1
        is_sent = tokens.sent_start == 1
        is_sent[first[:-1][n_tok > 0]] = True
        sent_global = np.cumsum(is_sent) - 1
        ent_sent = sent_global[starts]
        rep_first = first[rep]
        self.ents.append(
            [
                rep + rep0,
                starts + self.n_tokens,  # global token index (nearest anatomy by token distance)
                starts - rep_first,  # token span in its doc
                ends - rep_first,
                label,  # label hash
                tokens.ent_id(starts),  # pattern id hash
                tokens.idx(starts),  # char span
                tokens.end(ends - 1),
                ent_sent + self.n_sents,  # global sentence index
                ent_sent - sent_global[rep_first],  # sentence index in its doc
            ]
        )
        for j, text in enumerate(chunk):
            if may_hold_size(text):
                self.measured.append(rep0 + j)
                lo, hi = first[j], first[j + 1]
                self.sent_chars[rep0 + j] = tokens.idx(np.flatnonzero(is_sent[lo:hi]) + lo).tolist()
        self.n_tokens += len(iob)
        self.n_sents += int(sent_global[-1]) + 1 if len(sent_global) else 0
        if self.tokens:  # only now: `tokens` reads the buffer
            self.tokens.clear()
        self.arrays.clear()

    def columns(self) -> list[np.ndarray]:
        """The entity columns of every reduced doc (:data:`_ENT_COLUMNS`)."""
        self.reduce()
        if not self.ents:
            return [np.zeros(0, dtype=np.int64) for _ in _ENT_COLUMNS]
        return [np.concatenate(c) for c in zip(*self.ents, strict=True)]


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.table({f.name: pa.nulls(0, f.type) for f in schema}, schema=schema)


def _fast_tables(
    b: _Batch, report_ids: Sequence[str], texts: Sequence[str], spec: PipelineSpec
) -> tuple[pa.Table, pa.Table]:
    """Entity and label tables of the reports of the fast path (see :func:`batch_tables`)."""
    n_fast = len(b.fast)
    if not n_fast:
        return _empty(ENTITY_SCHEMA), _empty(LABEL_SCHEMA)
    lex = load_lexicon()
    kinds, phrases, scored = lex.kinds, lex.phrases, scored_sections()
    rep, starts, tok_a, tok_b, lab_h, id_h, char_a, char_b, ent_sent, sent = b.columns()
    negated, uncertain, historical, family = _assertions(b.codes, b.spans, b.n_flags, rep, tok_a, tok_b)
    # label and pattern id: few distinct hashes, named once each
    strings = b.strings
    lab_u, lab_inv = np.unique(lab_h.view(np.uint64), return_inverse=True)
    lab_names = [strings[h] for h in lab_u.tolist()]
    id_u, id_inv = np.unique(id_h.view(np.uint64), return_inverse=True)
    id_names = [strings[h] if h else "" for h in id_u.tolist()]
    is_anat = lab_inv == (lab_names.index("ANATOMY") if "ANATOMY" in lab_names else -1)
    text_col, ent_text = entity_texts([texts[k] for k in b.fast], rep, char_a, char_b)
    # finding: the pattern id when it names a finding, else the entity text looked up as a phrase
    f_names = list(kinds)
    f_code = {n: i for i, n in enumerate(f_names)}
    by_id = np.array([f_code.get(n, -1) if n else -1 for n in id_names], dtype=np.int64)
    finding = np.where(is_anat, -1, by_id[id_inv])
    for i in np.flatnonzero(~is_anat & (finding < 0)).tolist():
        name = phrases.get(" ".join(ent_text[i].lower().split()))
        if name is not None:
            finding[i] = f_code[name]
    location = _locations(starts, ent_sent, is_anat, id_inv, id_names, ent_text)
    laterality = _lateralities([texts[k] for k in b.fast], rep, char_a, char_b, is_anat)
    # section of each entity: (report, char) as one integer, searched in all reports' section starts
    n_secs = np.fromiter((len(s) for s in b.sections), dtype=np.int64, count=n_fast)
    flat = [s for secs in b.sections for s in secs]
    sec_names: list[str | None] = [s[0] for s in flat]
    sec_names.append("BODY")
    sec_keys = np.repeat(np.arange(n_fast, dtype=np.int64), n_secs) * _SECTION_STRIDE + np.fromiter(
        (s[1] for s in flat), dtype=np.int64, count=len(flat)
    )
    sec_first = np.zeros(n_fast + 1, dtype=np.int64)
    np.cumsum(n_secs, out=sec_first[1:])
    sec_pos = np.searchsorted(sec_keys, rep * _SECTION_STRIDE + char_a, side="right") - 1
    sec_pos = np.where(n_secs[rep] > 0, np.maximum(sec_pos, sec_first[rep]), len(flat))
    sec_scored = np.array([n in scored for n in sec_names], dtype=bool)
    source = np.where((id_u[id_inv] != 0) & spec.lexicon, 1, 0)
    ids = pa.array([report_ids[k] for k in b.fast], pa.string())

    def normal_phrase(j: int) -> tuple[int, int, str] | None:
        text = texts[b.fast[j]]
        if not text:
            return None
        span = find_normal_phrase(text, [(s[2], s[3]) for s in b.sections[j] if s[0] in scored])
        return None if span is None else (span[0], span[1], text[span[0] : span[1]])

    def section_at(j: int, pos: int) -> str:
        secs = b.sections[j]
        return secs[max(0, bisect_right([s[1] for s in secs], pos) - 1)][0] if secs else "BODY"

    labels = batch_labels(
        ids=ids,
        rep=rep,
        finding=finding,
        finding_names=f_names,
        scored=sec_scored[sec_pos] & ~historical & ~family,  # the mentions that count (findings.py)
        negated=negated,
        uncertain=uncertain,
        start=char_a,
        end=char_b,
        text=text_col,
        section=take_names(sec_names, sec_pos),
        normal_phrase=normal_phrase,
        section_at=section_at,
    )
    found = None
    if b.measured:

        def sent_chars(j: int) -> list[tuple[int, int]]:
            at = b.sent_chars[j]
            return list(zip(at, [*at[1:], len(texts[b.fast[j]])], strict=True))

        found = batch_measurements(
            measured=b.measured,
            texts=[texts[k] for k in b.fast],
            rep=rep,
            char_a=char_a,
            char_b=char_b,
            is_anat=is_anat,
            sent_chars=sent_chars,
            section_at=section_at,
        )
    columns = EntityColumns(
        rep=rep,
        sentence=sent,
        start=char_a,
        end=char_b,
        text=text_col,
        negated=negated,
        uncertain=uncertain,
        historical=historical,
        family=family,
        label=Coded(list(lab_names), lab_inv),
        finding=Coded(list(f_names), finding),
        location=location,
        laterality=laterality,
        section=Coded(sec_names, sec_pos),
        source=Coded([spec.model_source() or LEXICON_SOURCE, LEXICON_SOURCE], source),
    )
    return entity_table(ids, columns, found), labels


def _assertions(
    codes: list[int],
    spans: list[int],
    n_flags: list[int],
    rep: np.ndarray,
    tok_a: np.ndarray,
    tok_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``negated``, ``uncertain``, ``historical``, ``family`` of each entity from the assertion
    component's flags.

    The component keeps one entry per ``doc.ents`` span in order, i.e. the entities of the token arrays
    in order: the codes are taken as they are when their token spans are the entities' spans (else,
    which the pipeline never gives, looked up by report and token span; a missing one is an error).
    """
    code = np.fromiter(codes, dtype=np.int64, count=len(codes))
    got = np.fromiter(spans, dtype=np.int64, count=len(spans)).reshape(-1, 2)
    if len(got) != len(rep) or not (np.array_equal(got[:, 0], tok_a) and np.array_equal(got[:, 1], tok_b)):
        rep_of_code = np.repeat(np.arange(len(n_flags)), n_flags).tolist()
        keys = zip(rep_of_code, got[:, 0].tolist(), got[:, 1].tolist(), strict=True)
        by_span = dict(zip(keys, code.tolist(), strict=True))
        wanted = zip(rep.tolist(), tok_a.tolist(), tok_b.tolist(), strict=True)
        code = np.array([by_span[k] for k in wanted], dtype=np.int64)
    return (code & 1) != 0, (code & 2) != 0, (code & 4) != 0, (code & 8) != 0


def _lateralities(
    texts: list[str], rep: np.ndarray, char_a: np.ndarray, char_b: np.ndarray, is_anat: np.ndarray
) -> Coded:
    """``laterality`` column as codes (:func:`~medmm.reports.laterality.batch_sides` of every entity
    but anatomy; ``None`` the last name)."""
    code = np.full(len(rep), len(LATERALITIES), dtype=np.int64)
    idx = np.flatnonzero(~is_anat)
    if len(idx):
        at = {n: i for i, n in enumerate(LATERALITIES)}
        for e, side in batch_sides(texts, rep[idx], char_a[idx], char_b[idx]).items():
            code[idx[e]] = at[side]
    return Coded([*LATERALITIES, None], code)


def _locations(
    starts: np.ndarray,
    ent_sent: np.ndarray,
    is_anat: np.ndarray,
    id_inv: np.ndarray,
    id_names: list[str],
    ent_text: Slices | list[str],
) -> Coded:
    """``location`` column as codes (``None`` the last name): the nearest ANATOMY entity of the same
    sentence (token distance, the earlier one on a tie), named by its pattern id or else its lower-case
    text; null for ANATOMY entities."""
    names: list[str | None] = list(id_names)
    a_idx = np.flatnonzero(is_anat)
    code = np.full(len(starts), -1, dtype=np.int64)  # -1: no location
    if len(a_idx):
        a_name = id_inv[a_idx].copy()
        for p in np.flatnonzero(np.array([not id_names[c] for c in a_name.tolist()], dtype=bool)).tolist():
            a_name[p] = len(names)
            names.append(ent_text[a_idx[p]].lower())
        a_start, a_sent = starts[a_idx], ent_sent[a_idx]
        f_idx = np.flatnonzero(~is_anat)
        pos = np.searchsorted(a_start, starts[f_idx])
        prev, nxt = np.maximum(pos - 1, 0), np.minimum(pos, len(a_idx) - 1)
        f_sent = ent_sent[f_idx]
        ok_prev = (pos > 0) & (a_sent[prev] == f_sent)
        ok_next = (pos < len(a_idx)) & (a_sent[nxt] == f_sent)
        d_prev = starts[f_idx] - a_start[prev]
        d_next = a_start[nxt] - starts[f_idx]
        use_prev = ok_prev & (~ok_next | (d_prev <= d_next))
        use_next = ok_next & ~use_prev
        code[f_idx] = np.where(use_prev, a_name[prev], np.where(use_next, a_name[nxt], -1))
    code[code < 0] = len(names)
    return Coded([*names, None], code)

"""The cheaper steps of the ``parse`` fast path give what the plain ones give."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from medmm.reports import batch_extract
from medmm.reports.batch_extract import ENTITY_SCHEMA, LABEL_SCHEMA, _assertions, batch_tables
from medmm.reports.batch_measurements import may_hold_size
from medmm.reports.extract import doc_records
from medmm.reports.measurements import has_measurement
from medmm.reports.nlp import PipelineSpec, get_pipeline

PIECES = [
    "3", "12", "1.5", " ", "  ", "-", "\n", "mm", "MM", "Mm", "cm", "CM", "millimeter", "MILLIMETRES",
    "centimeters", "Centimetre", "x", "nodule", "no", "\u0130", "\u0131", "\u212a", "\u00e9", "\u0663",
]  # fmt: skip
REPORTS = [
    "FINDINGS: A 1.2 x 0.8 cm nodule in the right upper lobe. No effusion.\nIMPRESSION: Nodule.",
    "3-4 mm nodules in the left lung. Mild cardiomegaly.",
    "No acute cardiopulmonary abnormality.",
    "",
    "Heart size XXXX enlarged. Right lower lobe opacity cannot be excluded. 2 to 3 cm effusion.",
    "Lungs are clear. Old rib fracture in the right lateral ribs measuring 15 mm.",
    "Congestive heart failure (CHF). CHF has resolved.",
    "Stable.",
]


def test_size_prefilter_same_as_has_measurement() -> None:
    rng = random.Random(5)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 10))) for _ in range(20_000)]
    assert [may_hold_size(t) for t in texts] == [has_measurement(t) for t in texts]
    assert 1_000 < sum(map(has_measurement, texts)) < 19_000  # both outcomes are exercised


@pytest.mark.parametrize("extra", [[], ["Caf\u00e9 \u2014 mild cardiomegaly. No effusion \u00e0 droite."]])
def test_small_chunks_same_rows_as_doc_records(monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    """Token arrays reduced every 3 docs (entity columns, sentences and sizes across chunk bounds);
    entity texts cut from one buffer (ASCII batch) or sliced in Python (a non-ASCII report)."""
    monkeypatch.setattr(batch_extract, "CHUNK", 3)
    spec = PipelineSpec()
    texts = REPORTS * 3 + extra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs = list(get_pipeline(spec).pipe(texts))
    ids = [f"r{i}" for i in range(len(texts))]
    ents, labels, n = batch_tables(docs, ids, texts, [None] * len(texts), spec)
    ref_e, ref_l, ref_n = [], [], []
    for doc, rid, text in zip(docs, ids, texts, strict=True):
        e, lab, k = doc_records(doc, rid, spec, None, text=text)
        ref_e += e
        ref_l += lab
        ref_n.append(k)
    assert n == ref_n
    assert ents.num_rows >= 60 and sum(r["label"] == "MEASUREMENT" for r in ref_e) == 12
    # rows grouped by report in input order in both (doc_records order within each report)
    assert ents.sort_by([("report_id", "ascending")]).equals(
        pa.Table.from_pylist(ref_e, schema=ENTITY_SCHEMA).sort_by([("report_id", "ascending")])
    )
    assert labels.sort_by([("report_id", "ascending")]).equals(
        pa.Table.from_pylist(ref_l, schema=LABEL_SCHEMA).sort_by([("report_id", "ascending")])
    )


def test_assertion_flags_by_span_when_not_in_entity_order() -> None:
    # report 0 has entities (0, 1) and (2, 4), report 1 has (0, 2): flags given in another order
    rep, tok_a, tok_b = np.array([0, 0, 1]), np.array([0, 2, 0]), np.array([1, 4, 2])
    codes, spans = [2 | 4, 1, 3 | 8], [2, 4, 0, 1, 0, 2]  # bits: negated, uncertain, historical, family
    negated, uncertain, historical, family = _assertions(codes, spans, [2, 1], rep, tok_a, tok_b)
    assert negated.tolist() == [True, False, True] and uncertain.tolist() == [False, True, True]
    assert historical.tolist() == [False, True, False] and family.tolist() == [False, False, True]
    in_order = _assertions([1, 2 | 4, 3 | 8], [0, 1, 2, 4, 0, 2], [2, 1], rep, tok_a, tok_b)
    assert [v.tolist() for v in in_order] == [
        [True, False, True],
        [False, True, True],
        [False, True, False],
        [False, False, True],
    ]
    with pytest.raises(KeyError):  # an entity without flags is an error, as before
        _assertions([1, 2], [0, 1, 2, 4], [2, 0], rep, tok_a, tok_b)


def test_parse_task_restores_gc_and_writes_the_same_tables(tmp_path: Path) -> None:
    """``tasks.parse_to_part`` turns the cyclic GC off for the task only, and its part holds what
    ``parse_columns`` gives."""
    import gc

    from medmm.reports.pipeline import parse_columns
    from medmm.reports.resume import Parts
    from medmm.reports.tasks import PartWritten, Work, parse_to_part, stage

    texts = REPORTS[:4]
    work = Work([f"r{i}" for i in range(4)], texts, [None] * 4, ["p"] * 4, [f"k{i}" for i in range(4)])
    parts = Parts(tmp_path / "run")
    token = parts.mark()
    item = stage(tmp_path / "todo", [work])[0]
    assert gc.isenabled()
    out = parse_to_part(item, str(parts.run_dir), token)
    assert gc.isenabled() and isinstance(out, PartWritten) and out.n_reports == 4
    gc.disable()
    try:
        parse_to_part(item, str(parts.run_dir), token)
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()
    ents, labels, reports = parts.merge(work.keys)
    ref = parse_columns(work.ids, texts, work.sections, PipelineSpec())
    assert ents.drop(columns="_key").equals(ref.entities.to_pandas())
    assert labels.drop(columns="_key").equals(ref.labels.to_pandas())
    assert reports["report_id"].tolist() == work.ids

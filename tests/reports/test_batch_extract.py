"""The batch (columnar) extraction gives exactly the rows of the per-report ``doc_records``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from medmm.reports.batch_extract import ENTITY_SCHEMA, LABEL_SCHEMA, batch_tables
from medmm.reports.extract import doc_records
from medmm.reports.nlp import PipelineSpec, get_pipeline

CRAFTED = [
    "FINDINGS: Mild cardiomegaly. No pleural effusion or pneumothorax in the left lung base.\n"
    "IMPRESSION: Possible right upper lobe nodule near the hilum and a granuloma in the left apex.",
    "Heart size XXXX enlarged. Right lower lobe opacity cannot be excluded.",
    "A 1.2 x 0.8 cm nodule in the right upper lobe. 3-4 mm nodules in the left lung.",
    "Congestive heart failure (CHF). CHF has resolved. No acute cardiopulmonary abnormality.",
    "",
    "Lungs are clear.",
    "INDICATION: rule out pneumonia\nIMPRESSION: Normal chest.",
    "Left basilar atelectasis/scarring. No edema. Emphysema. Old rib fracture in the right lateral ribs.",
]


def _reference(docs: list[Any], ids: list[str], texts: list[str], known: list[Any], spec: PipelineSpec):
    ents: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    n_sections = []
    for doc, rid, text, k in zip(docs, ids, texts, known, strict=True):
        e, lab, n = doc_records(doc, rid, spec, k, text=text)
        ents += e
        labels += lab
        n_sections.append(n)
    return (
        pa.Table.from_pylist(ents, schema=ENTITY_SCHEMA),
        pa.Table.from_pylist(labels, schema=LABEL_SCHEMA),
        n_sections,
    )


def _by_report(table: pa.Table, ids: list[str]) -> pd.DataFrame:
    """Rows grouped by report in input order, each report's rows kept in their order."""
    frame = table.to_pandas()
    pos = frame["report_id"].map({r: i for i, r in enumerate(ids)})
    return (
        frame.assign(_pos=pos).sort_values("_pos", kind="stable").drop(columns="_pos").reset_index(drop=True)
    )


def _check(texts: list[str], known: list[Any]) -> int:
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs = list(get_pipeline(spec).pipe(texts))
    ids = [f"r{i}" for i in range(len(texts))]
    ents, labels, n = batch_tables(docs, ids, texts, known, spec)
    ref_e, ref_l, ref_n = _reference(docs, ids, texts, known, spec)
    assert ents.schema.equals(ENTITY_SCHEMA) and labels.schema.equals(LABEL_SCHEMA)
    pd.testing.assert_frame_equal(_by_report(ents, ids), _by_report(ref_e, ids))
    pd.testing.assert_frame_equal(_by_report(labels, ids), _by_report(ref_l, ids))
    assert n == ref_n
    return ents.num_rows


def test_crafted_reports_same_rows_as_doc_records() -> None:
    n = _check(CRAFTED, [None] * len(CRAFTED))
    assert n > 20


def test_location_is_nearest_anatomy_of_the_sentence() -> None:
    spec = PipelineSpec()
    texts = ["Opacity in the left lung base and the right lung.", "Right lung. Effusion."]
    docs = list(get_pipeline(spec).pipe(texts))
    ents, _, _ = batch_tables(docs, ["a", "b"], texts, [None, None], spec)
    rows = [(r["report_id"], r["text"], r["location"]) for r in ents.to_pylist() if r["label"] != "ANATOMY"]
    # anatomy of another sentence (report b) is never a location
    assert rows == [("a", "Opacity", "left lung base"), ("b", "Effusion", None)]


def test_empty_batch_and_reports_without_entities() -> None:
    spec = PipelineSpec()
    ents, labels, n = batch_tables([], [], [], [], spec)
    assert (ents.num_rows, labels.num_rows, n) == (0, 0, [])
    docs = list(get_pipeline(spec).pipe(["Stable.", ""]))
    ents, labels, n = batch_tables(docs, ["a", "b"], ["Stable.", ""], [None, None], spec)
    assert ents.num_rows == 0 and labels["finding"].to_pylist() == ["normal", "normal"]


@pytest.mark.parametrize("known_sections", [True, False])
def test_iu_reports_same_rows_as_doc_records(shared_data: Path, known_sections: bool) -> None:
    from medmm.reports.io.inputs import read_reports

    csv = shared_data / "text" / "iu_xray" / "indiana_reports_dev.csv"
    cols = ["indication", "comparison", "findings", "impression"]
    reports = read_reports(csv, id_column="uid", text_columns=cols).reports[:400]
    texts = [r.text for r in reports]
    known = [r.sections if known_sections else None for r in reports]
    assert _check(texts, known) > 2000


def test_abbreviations_read_from_user_data() -> None:
    """The fast lookup of scispaCy's abbreviations finds the key (else every doc pays ``doc._``)."""
    from medmm.reports.batch_extract import _abbreviations_key

    nlp = get_pipeline(PipelineSpec())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, abbr = list(nlp.pipe(["No effusion.", "Congestive heart failure (CHF). CHF is stable."]))
    key = _abbreviations_key(plain)
    assert key is not None
    assert not plain.user_data.get(key) and [a.text for a in abbr.user_data[key]] == ["CHF", "CHF"]


@pytest.mark.parametrize(
    "texts",
    [
        ["Measures 12 mm."],  # a size and no other entity in the whole batch
        ["Size 3 x 4 cm in the xyz.", "Stable 5 mm density."],
        ["Measures 12 mm.", "No 5 mm effusion."],  # one unlinked and one linked size
    ],
)
def test_sizes_without_entities_same_rows_as_doc_records(texts: list[str]) -> None:
    assert _check(texts, [None] * len(texts)) >= len(texts)

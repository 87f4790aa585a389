"""The parallel ``parse`` path gives the in-process outputs, and the batch side rule gives the rule's.

The four frames of a parse of a few dozen IU reports with 2 local workers (several tasks, parts written
by the workers) ``.equals()`` those of the in-process parse; :func:`clear_side_conflicts_batch` equals
:func:`~medmm.reports.laterality.clear_side_conflicts` on the IU reports' entity tables (it only skips
rows the rule cannot change).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

FRAMES = ("entities", "report_labels", "report_texts", "manifest_reports")
COLS = ["indication", "comparison", "findings", "impression"]


def _iu(shared_data: Path, n: int) -> pd.DataFrame:
    path = shared_data / "text" / "iu_xray" / "indiana_reports_dev.csv"
    if not path.exists():
        pytest.skip("IU reports not in the shared data")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    # reports with side words and measurements first: the rows the fast paths treat apart
    sided = frame["findings"].str.contains(r"\b(?:left|right)\b", case=False)
    return pd.concat([frame[sided].head(n // 2), frame[~sided].head(n - n // 2)]).sort_index()


def test_two_workers_equal_in_process(shared_data: Path, tmp_path: Path, key_file: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    src = tmp_path / "iu.csv"
    _iu(shared_data, 48).to_csv(src, index=False)
    runs = {}
    for workers in (0, 2):
        run = tmp_path / f"run{workers}"
        parse_reports(
            src, run, id_column="uid", text_columns=COLS, workers=workers, batch_size=10,
            key_file=key_file, keep_text=True,
        )  # fmt: skip
        runs[workers] = run
    for name in FRAMES:
        a = pd.read_parquet(runs[0] / f"{name}.parquet")
        b = pd.read_parquet(runs[2] / f"{name}.parquet")
        assert len(a) > 0, name
        assert a.equals(b), name


def test_batch_side_rule_equals_the_rule(shared_data: Path) -> None:
    from medmm.reports.batch_extract import batch_tables
    from medmm.reports.batch_sides import clear_side_conflicts_batch
    from medmm.reports.laterality import clear_side_conflicts
    from medmm.reports.nlp import PipelineSpec, get_pipeline

    frame = _iu(shared_data, 400)
    ids = frame["uid"].tolist()
    texts = [". ".join(v for v in row if v) for row in frame[COLS].itertuples(index=False)]
    spec = PipelineSpec()
    ents, _, _ = batch_tables(get_pipeline(spec).pipe(texts), ids, texts, [None] * len(ids), spec)
    want = clear_side_conflicts(ents, ids, texts)
    got = clear_side_conflicts_batch(ents, ids, texts)
    assert want["location"].null_count > ents["location"].null_count  # some locations are cleared
    assert got.equals(want)


def test_batch_side_rule_keeps_rows_without_a_side() -> None:
    from medmm.reports.batch_sides import clear_side_conflicts_batch

    text = "Opacity in the right lower lobe and a left pleural effusion. Lungs: no nodule."
    ents = pa.table(
        {
            "report_id": ["a", "a", "a"],
            "start": [0, 43, 71],
            "end": [7, 59, 77],
            "label": ["FINDING", "FINDING", "FINDING"],
            "location": ["right lower lobe", "right lower lobe", "lungs"],
        }
    )
    got = clear_side_conflicts_batch(ents, ["a"], [text])
    assert got["location"].to_pylist() == ["right lower lobe", None, "lungs"]
    assert clear_side_conflicts_batch(ents.slice(0, 0), ["a"], [text]).num_rows == 0

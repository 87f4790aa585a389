"""Parts hold no report texts (a report's key is a hash of its text): ``report_texts`` comes from the
input, and parts written with a ``text`` column by earlier versions still resume to the same tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from pyarrow import feather

from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports import pipeline
from medmm.reports.resume import PARTS_DIR

CSV = (
    "uid,findings,impression\n"
    "1,Heart is mildly enlarged. No pneumothorax.,Possible left lower lobe atelectasis.\n"
    "2,The lungs are clear. No pleural effusion.,No acute cardiopulmonary abnormality.\n"
    "3,A 12 mm nodule in the right upper lobe.,Nodule.\n"
)
TABLES = ("entities", "report_labels", "report_texts", "manifest_reports")


def _tables(run: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(run / f"{t}.parquet") for t in TABLES}


def test_parts_without_texts_and_old_parts_with_texts(tmp_path: Path, key_file: Path) -> None:
    src = tmp_path / "r.csv"
    src.write_text(CSV)
    run = tmp_path / "run"
    first = pipeline.parse_reports(src, run, workers=0, batch_size=2, keep_text=True).counts
    assert first["parsed_now"] == 3
    tables = _tables(run)
    assert tables["report_texts"]["text"].str.contains("No pneumothorax|lungs are clear|12 mm").all()
    rids = [Pseudonymizer(load_key(key_file)).id(i, "report") for i in "123"]
    assert tables["report_texts"]["report_id"].tolist() == rids
    outcome = sorted((run / PARTS_DIR).glob("part-*-reports.arrow"))
    assert len(outcome) == 2
    for path in outcome:
        assert "text" not in feather.read_table(path).column_names  # texts are not written again

    # a part as earlier versions wrote it: the same outcome with the report's text
    texts = dict(zip(tables["report_texts"]["report_id"], tables["report_texts"]["text"], strict=True))
    old = feather.read_table(outcome[0])
    old = old.append_column("text", pa.array([texts[i] for i in old["report_id"].to_pylist()], pa.string()))
    feather.write_feather(old, outcome[0], compression="uncompressed")

    again = pipeline.parse_reports(src, run, workers=0, batch_size=2, keep_text=True).counts
    assert again["parsed_now"] == 0 and again["resumed"] == 3
    for name, frame in _tables(run).items():
        assert frame.equals(tables[name]), name

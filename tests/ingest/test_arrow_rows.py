"""The final tables without pandas: the same schema, pandas metadata and frames as pandas gives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medmm.ingest.arrow_rows import pandas_schema, table_from_columns

#: columns covering pandas' inference rules that the manifest and the volume records meet, and more
ROWS: list[dict[str, Any]] = [
    {
        "s": "a",
        "s_null": None,
        "i": 1,
        "i_null": 2**60 + 1,
        "big": 2**62 + 3,
        "all_null": None,
        "f": 1.5,
        "b": True,
        "b_null": None,
        "l_int": [1, 2],
        "l_empty": [],
        "l_str": ["x"],
        "l_none": None,
        "ll": [[1.0, 2.5], [3.0]],
        "num": 1,
        "uni": "é/ü",
    },
    {
        "s": "",
        "s_null": "b",
        "i": -3,
        "i_null": None,
        "big": 7,
        "all_null": None,
        "f": None,
        "b": False,
        "b_null": True,
        "l_int": [],
        "l_empty": [],
        "l_str": [],
        "l_none": [0.5],
        "ll": [],
        "num": 2.25,
        "uni": None,
    },
]
NAMES = list(ROWS[0])


def _pandas(rows: list[dict[str, Any]], names: list[str]) -> pa.Table:
    return pa.Table.from_pandas(pd.DataFrame(rows, columns=names), preserve_index=False)


@pytest.mark.parametrize("picks", [[0, 1], [0], [1], [1, 0], []])
def test_schema_and_metadata_bytes_equal_what_pandas_gives(picks: list[int]) -> None:
    rows = [ROWS[i] for i in picks]
    expected = _pandas(rows, NAMES).schema
    got = pandas_schema(NAMES, rows)
    assert got.remove_metadata().equals(expected.remove_metadata())
    assert got.metadata == expected.metadata  # the JSON bytes, key order and spacing included


def test_values_outside_the_rules_are_left_to_pandas() -> None:
    rows = [{"u": 2**64 - 1}, {"u": 1}]  # beyond int64: pandas makes it uint64
    got = pandas_schema(["u"], rows)
    assert got.field("u").type == pa.uint64()
    assert got.metadata == _pandas(rows, ["u"]).schema.metadata


def test_table_equals_from_pylist_and_reads_back_as_pandas_wrote_it(tmp_path: Path) -> None:
    schema = pandas_schema(NAMES, ROWS)
    table = table_from_columns([[r[n] for r in ROWS] for n in NAMES], schema)
    table.validate(full=True)
    assert table.equals(_pandas(ROWS, NAMES), check_metadata=True)
    assert table["i_null"][0].as_py() == float(2**60 + 1)  # nearest double, as pandas converts it
    pq.write_table(table, tmp_path / "ours.parquet", compression="snappy")
    pd.DataFrame(ROWS, columns=NAMES).to_parquet(tmp_path / "pandas.parquet", index=False)
    ours, theirs = pd.read_parquet(tmp_path / "ours.parquet"), pd.read_parquet(tmp_path / "pandas.parquet")
    assert ours.dtypes.equals(theirs.dtypes)
    assert ours.to_json() == theirs.to_json()  # list cells are numpy arrays: compared as JSON
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


def test_empty_and_chunked_columns() -> None:
    schema = pandas_schema(["a", "b"], [])
    assert schema.metadata == _pandas([], ["a", "b"]).schema.metadata
    assert table_from_columns([[], []], schema).num_rows == 0
    strings = pa.schema([("s", pa.string())])  # 32-bit offsets (pandas 2's strings)
    assert table_from_columns([["ab", None, "c"]], strings)["s"].to_pylist() == ["ab", None, "c"]


def test_a_fresh_unattended_run_imports_no_pandas_arrow_compute_or_rich(tmp_path: Path) -> None:
    from medmm.ingest.sample import build_sample_archive

    archive = build_sample_archive(tmp_path / "archive")
    key = tmp_path / "site.key"
    key.write_text("5a" * 32 + "\n")
    key.chmod(0o600)
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        if __name__ == "__main__":
            from medmm.ingest.pipeline import ingest_archive
            run, key = {str(tmp_path / "run")!r}, Path({str(key)!r})
            ingest_archive({str(archive)!r}, run, workers=1, key_file=key)
            print(json.dumps([m in sys.modules for m in ("pandas", "pyarrow.compute", "rich")]))
        """
    )
    (tmp_path / "run_it.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run_it.py")], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, False, False]
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert manifest["status"].nunique() >= 4  # a varied table: quarantined, non-image, ingested ...
    for name in ("manifest.parquet", "volumes.parquet"):  # pandas writes the frame it reads back alike
        path = tmp_path / "run" / name
        frame = pd.read_parquet(path)
        frame.to_parquet(tmp_path / f"pandas-{name}", index=False)
        assert pq.read_schema(path).metadata == pq.read_schema(tmp_path / f"pandas-{name}").metadata
        assert pq.read_schema(path).equals(pq.read_schema(tmp_path / f"pandas-{name}"), check_metadata=True)


def test_volume_columns_are_the_volume_record_fields_in_order() -> None:
    from medmm.imaging.records import VolumeRecord
    from medmm.ingest.finalize import VOLUME_COLUMNS

    assert list(VOLUME_COLUMNS) == list(VolumeRecord.model_fields)

"""A file (or folder) whose name is not UTF-8 is quarantined with a readable name; the run goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medmm.ingest.discover import walk_archive
from medmm.ingest.pipeline import ingest_archive
from medmm.tables import read_table


def _archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "ok.txt").write_text("notes\n")
    base = os.fsencode(root)
    with open(base + b"/r\xe9sum\xe9.dcm", "wb") as fh:  # latin-1 name, as old PACS exports write them
        fh.write(b"x" * 200)
    os.mkdir(base + b"/d\xe9p")
    with open(base + b"/d\xe9p/a.dcm", "wb") as fh:
        fh.write(b"y" * 200)
    return root


def test_walk_quarantines_non_utf8_names(tmp_path: Path) -> None:
    entries, rows = walk_archive(_archive(tmp_path))
    assert [e.rel for e in entries] == ["ok.txt"]
    assert sorted(r.path for r in rows) == ["d\\xe9p/a.dcm", "r\\xe9sum\\xe9.dcm"]
    for r in rows:
        r.path.encode("utf-8")
        assert r.status == "quarantined"
        assert "not valid UTF-8" in r.reason and "rename" in r.reason


@pytest.mark.filterwarnings("ignore")
def test_ingest_lists_non_utf8_names_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ingest_archive(_archive(tmp_path), run, workers=1, processes=False, key_file=tmp_path / "k")
    m = read_table(run / "manifest.parquet")
    assert sorted(m["path"]) == ["d\\xe9p/a.dcm", "ok.txt", "r\\xe9sum\\xe9.dcm"]
    assert (m.set_index("path").loc[["d\\xe9p/a.dcm", "r\\xe9sum\\xe9.dcm"], "status"] == "quarantined").all()

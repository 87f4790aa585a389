"""The driver of a local ``parse`` does no spaCy work, and its workers' server starts before the read.

- importing ``medmm.reports.pipeline`` (the driver's module) imports no spaCy (~1 CPU-s: the driver of
  a Dask parse never builds a pipeline; the workers' server does);
- with a local cluster, the server the workers are forked from is running while the input is read
  (it builds the pipeline meanwhile), and it is stopped once the run is over, also when a re-run finds
  nothing left to parse (no cluster is then started at all).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

CSV = "uid,findings\n1,Left pleural effusion.\n2,No pneumothorax.\n3,Mild cardiomegaly.\n"


def test_pipeline_module_imports_no_spacy() -> None:
    code = "import sys, medmm.reports.pipeline as p; print([m for m in sys.modules if m.startswith('spacy')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_worker_server_runs_during_read_and_stops(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medmm.reports import pipeline
    from medmm.runinfo import read_run_json
    from medmm.workflows import forkserver

    src = tmp_path / "r.csv"
    src.write_text(CSV)
    seen: list[bool] = []
    real = pipeline.read_reports

    def read(*args: Any, **kwargs: Any) -> Any:
        seen.append(forkserver._server is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "read_reports", read)
    run = tmp_path / "run"
    first = pipeline.parse_reports(src, run, id_column="uid", workers=2, key_file=key_file)
    assert first.counts["parsed_now"] == 3
    assert forkserver._server is None  # stopped with the cluster
    again = pipeline.parse_reports(src, run, id_column="uid", workers=2, key_file=key_file)
    assert again.counts["parsed_now"] == 0
    assert seen == [True, True]
    assert forkserver._server is None  # nothing to parse: stopped without a cluster
    assert "cluster_start" not in read_run_json(run)["stages"]["reports"]["timings"]
    ents = pd.read_parquet(run / "entities.parquet")
    assert sorted(ents["finding"].dropna()) == ["cardiomegaly", "pleural effusion", "pneumothorax"]

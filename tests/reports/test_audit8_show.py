"""Session 8 audit: `medmm reports show` on a report that was not parsed says why (its manifest status,
row and reason) instead of "may be quarantined or a duplicate", and an unknown id says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner


def test_show_explains_a_quarantined_report(tmp_path: Path) -> None:
    from medmm.cli import app
    from medmm.reports.pipeline import parse_reports

    csv = tmp_path / "r.csv"
    pd.DataFrame({"id": ["ACC-1", "ACC-2"], "report": ["Small effusion.", "  "]}).to_csv(csv, index=False)
    run = tmp_path / "run"
    parse_reports(csv, run, workers=0)
    runner = CliRunner()
    res = runner.invoke(app, ["reports", "show", "ACC-2", "--run", str(run)])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "it is quarantined (EmptyReportError: r.csv#2" in out and "fill the text column" in out
    assert "ACC-2" not in out  # the pseudonym, never the accession number
    res = runner.invoke(app, ["reports", "show", "ACC-9", "--run", str(run)])
    assert res.exit_code == 2 and "no report of this run has that id" in " ".join(res.output.split())
    res = runner.invoke(app, ["reports", "show", "ACC-1", "--run", str(run)])
    assert res.exit_code == 0 and "effusion" in res.output

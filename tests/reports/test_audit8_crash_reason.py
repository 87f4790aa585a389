"""Session 8 audit: a report the pipeline crashes on is quarantined with a reason that names the
exception but never quotes the report's text (an exception message may quote its input, and the text
is not de-identified: the manifest held it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def test_crash_reason_never_quotes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medmm.reports import batch_extract
    from medmm.reports.pipeline import parse_reports

    real = batch_extract.batch_tables

    def crashing(docs, ids, texts, *rest):
        docs = list(docs)
        for text in texts:
            if "Pinkerton" in text:
                raise ValueError(f"cannot read token {text[8:40]!r} in {text}")
        return real(docs, ids, texts, *rest)

    monkeypatch.setattr(batch_extract, "batch_tables", crashing)
    rows = [("a", "Patient Harold Pinkerton MRN 555123, small left effusion."), ("b", "No effusion.")]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["id", "report"]).to_csv(csv, index=False)
    run = tmp_path / "run"
    parse_reports(csv, run, workers=0, keep_report_ids=True)
    man = pd.read_parquet(run / "manifest_reports.parquet").set_index("report_id")
    assert man.loc["a", "status"] == "quarantined" and man.loc["b", "status"] == "ingested"
    reason = man.loc["a", "reason"]
    assert reason.startswith("ValueError: ") and "pipeline failed on this report" in reason
    assert "Pinkerton" not in reason and "555123" not in reason  # the message quoted them


def test_crash_reason_keeps_a_message_without_text() -> None:
    from medmm.reports.pipeline import crash_reason

    assert crash_reason(IndexError("list index out of range"), "No effusion.") == (
        "IndexError: list index out of range (the pipeline failed on this report)"
    )

"""Session 8 audit: a finding written with its own side never gets the other side's location.
"Opacity in the right lower lobe and a left pleural effusion" placed the effusion in the right lower
lobe (the nearest anatomy of the sentence); "Large right pleural effusion and patchy left lower lobe
airspace disease" (an IU report) placed the right effusion in the left lower lobe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.laterality import finding_side, location_side


@pytest.mark.parametrize(
    ("text", "word", "side"),
    [
        ("Small right pleural effusion.", "pleural effusion", "right"),
        ("Left-sided pneumothorax.", "pneumothorax", "left"),
        ("Bilateral pleural effusions.", "pleural effusions", "bilateral"),
        ("Effusion on the left.", "Effusion", "left"),
        ("Right pneumothorax, left effusion.", "effusion", "left"),
        ("Right lung with pleural effusion.", "pleural effusion", None),  # "with": not its own side
        ("Pleural effusion.", "Pleural effusion", None),
    ],
)
def test_finding_side(text: str, word: str, side: str | None) -> None:
    a = text.index(word)
    assert finding_side(text, a, a + len(word)) == side


def test_location_side() -> None:
    assert [location_side(x) for x in ("left lung base", "right apex", "lingula", "mediastinum")] == [
        "left",
        "right",
        "left",
        None,
    ]


def test_parse_never_places_a_finding_on_the_other_side(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports

    rows = [
        ("a", "Opacity in the right lower lobe and a left pleural effusion."),
        ("b", "IMPRESSION: Large right pleural effusion and patchy left lower lobe airspace disease."),
        ("c", "Right lower lobe opacity. Left basilar atelectasis."),
        ("d", "Right lower lobe airspace disease with bilateral pleural effusions."),
    ]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["id", "report"]).to_csv(csv, index=False)
    parse_reports(csv, tmp_path / "run", workers=0, keep_report_ids=True)
    ents = pd.read_parquet(tmp_path / "run" / "entities.parquet")
    where = {(r.report_id, r.finding): r.location for r in ents.itertuples() if r.label == "FINDING"}
    assert where[("a", "opacity")] == "right lower lobe"
    assert pd.isna(where[("a", "pleural effusion")])  # was "right lower lobe"
    assert pd.isna(where[("b", "pleural effusion")])  # was "left lower lobe"
    assert where[("b", "airspace disease")] == "left lower lobe"
    assert where[("c", "opacity")] == "right lower lobe" and where[("c", "atelectasis")] == "left lung base"
    assert pd.isna(where[("d", "pleural effusion")])  # bilateral: no one-sided location

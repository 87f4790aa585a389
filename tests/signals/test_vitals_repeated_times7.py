"""Vitals rows repeating a timestamp: one value per time (the first), and the manifest says so.

Before, both values were kept as two samples at one instant (a window's vitals join took either) with no note.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medmm.pseudonym import Pseudonymizer
from medmm.signals.readers import read_tabular


def test_repeated_times_keep_the_first_value_and_are_counted(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text(
        "time,HR,SpO2\n"
        "2020-03-04 10:00,80,97\n"
        "2020-03-04 10:00,80,95\n"  # HR repeated with its value, SpO2 with another
        "2020-03-04 10:05,82,96\n"
        "2020-03-04 10:05,90,\n"  # HR conflicting; SpO2 empty: no repeat
        "2020-03-04 10:10,84,98\n"
    )
    rec = read_tabular(tmp_path, "v.csv")
    by = {s.name: s for s in rec.series}
    assert by["HR"].values.tolist() == [80, 82, 84] and by["SpO2"].values.tolist() == [97, 96, 98]
    assert list(by["HR"].t_s) == [0.0, 300.0, 600.0]
    assert rec.notes == [
        "repeated timestamps, first value kept: HR (2 repeated, 1 with another value), "
        "SpO2 (1 repeated, 1 with another value)"
    ]


def test_unique_times_are_untouched(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("time,HR\n2020-03-04 10:00,80\n2020-03-04 10:05,82\n")
    rec = read_tabular(tmp_path, "v.csv")
    assert rec.series[0].values.tolist() == [80, 82] and rec.notes == []


def test_the_note_reaches_the_manifest(tmp_path: Path) -> None:
    from medmm.signals.pipeline import run_signals

    d = tmp_path / "in"
    d.mkdir()
    (d / "chart.csv").write_text("time,HR\n2020-03-04 10:00,80\n2020-03-04 10:00,81\n2020-03-04 10:05,82\n")
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"u" * 32))
    manifest = pd.read_parquet(out / "manifest_signals.parquet").set_index("path")
    assert manifest.loc["chart.csv", "status"] == "ingested"
    assert "repeated timestamps, first value kept: HR (1 repeated, 1 with another value)" in str(
        manifest.loc["chart.csv", "reason"]
    )
    vit = pd.read_parquet(out / "vitals.parquet")
    assert vit[vit["channel"] == "HR"]["value"].tolist() == [80, 82]

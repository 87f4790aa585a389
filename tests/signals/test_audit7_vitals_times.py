"""Session 7 audit: vitals tables with odd timestamps are read right, or refused, never misread."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from medmm.signals.errors import AmbiguousTimeError
from medmm.signals.readers import read_tabular


def _read(tmp_path: Path, text: str, name: str = "v.csv"):
    (tmp_path / name).write_text(text)
    return read_tabular(tmp_path, name)


def test_dotted_dates_are_day_first(tmp_path: Path) -> None:
    rec = _read(tmp_path, "timestamp;HR [bpm]\n04.03.2020 10:00:00;80\n05.03.2020 10:00:00;82\n")
    assert rec.start == datetime(2020, 3, 4, 10, 0)  # was: April 3rd
    assert rec.series[0].t_s.tolist() == [0.0, 86400.0]  # was: 30 days apart


def test_slashed_dates_follow_the_rows_or_are_refused(tmp_path: Path) -> None:
    rec = _read(tmp_path, "time,HR\n12/03/2020 10:00,80\n13/03/2020 10:00,82\n")
    assert rec.start == datetime(2020, 3, 12, 10, 0)
    assert rec.series[0].t_s.tolist() == [0.0, 86400.0]
    with pytest.raises(AmbiguousTimeError, match="day/month or month/day") as err:
        _read(tmp_path, "time,HR\n04/03/2020 10:00,80\n05/03/2020 10:00,82\n", "b.csv")
    assert "2020" not in str(err.value)  # a reason never quotes a (real, unshifted) date


def test_time_of_day_gives_no_invented_date(tmp_path: Path) -> None:
    rec = _read(tmp_path, "time,HR\n23:59:00,80\n00:01:00,82\n")
    assert rec.start is None and not rec.start_has_date  # was: today's date as the start
    assert rec.series[0].t_s.tolist() == [0.0, 120.0]  # midnight crossing, not "backwards"


def test_epoch_milliseconds(tmp_path: Path) -> None:
    rec = _read(tmp_path, "time,HR\n1583316000000,80\n1583316060000,81\n")
    assert rec.series[0].t_s.tolist() == [0.0, 60.0]  # was: 60,000 s apart, starting at 1.58e12 s
    assert rec.start == datetime(2020, 3, 4, 10, 0)


def test_utc_offsets_across_a_daylight_saving_change(tmp_path: Path) -> None:
    rec = _read(
        tmp_path,
        "time,HR\n2020-03-29T01:59:00+01:00,80\n2020-03-29T03:00:00+02:00,82\n2020-03-29T03:01:00+02:00,84\n",
    )  # was: ValueError "Mixed timezones detected" quarantined as an unexpected error
    assert rec.series[0].t_s.tolist() == [0.0, 60.0, 120.0]
    assert rec.start == datetime(2020, 3, 29, 1, 59)
    with pytest.raises(AmbiguousTimeError, match="UTC offset"):
        _read(tmp_path, "time,HR\n2020-03-29T01:59:00+01:00,80\n2020-03-29 03:00:00,82\n", "m.csv")


def test_quoted_decimal_commas_are_numbers(tmp_path: Path) -> None:
    rec = _read(tmp_path, 'time,HR,Temp\n2020-03-04 10:00,80,"36,6"\n2020-03-04 10:05,81,"36,8"\n')
    temp = next(s for s in rec.series if s.name == "TEMP")  # was: the column silently dropped
    assert temp.values.tolist() == [36.6, 36.8]


def test_time_column_with_unit_or_in_another_language(tmp_path: Path) -> None:
    rec = _read(tmp_path, "Time (ms),HR\n0,80\n1500,81\n")  # was: "no timestamp column"
    assert rec.series[0].t_s.tolist() == [0.0, 1.5]
    rec = _read(tmp_path, "Zeit [min];HF [1/min]\n0;80\n2;81\n", "de.csv")
    assert rec.series[0].t_s.tolist() == [0.0, 120.0]
    rec = _read(tmp_path, "Uhrzeit,HR\n10:00:00,80\n10:00:30,81\n", "u.csv")
    assert rec.series[0].t_s.tolist() == [0.0, 30.0]


def test_values_with_units_in_cells_and_a_note_on_unread_columns(tmp_path: Path) -> None:
    from medmm.pseudonym import Pseudonymizer
    from medmm.signals.pipeline import run_signals

    d = tmp_path / "in"
    d.mkdir()
    (d / "chart.csv").write_text(
        "time,HR,Temp,BP,Notes,hadm_id\n"
        "2020-03-04 10:00,80 bpm,37.2 °C,120/80,calm,4711\n"
        "2020-03-04 10:05,82 bpm,37.4 °C,118/79,asleep,4711\n"
    )
    out = tmp_path / "out"
    run_signals(d, out, workers=0, pseudonymizer=Pseudonymizer(b"u" * 32))
    sig = pd.read_parquet(out / "signals.parquet").set_index("channel")
    # was: HR and Temp silently dropped (text columns)
    assert sig.loc["HR", "units"] == "bpm" and sig.loc["TEMP", "units"] == "°C"
    vit = pd.read_parquet(out / "vitals.parquet")
    assert vit[vit["channel"] == "TEMP"]["value"].tolist() == [37.2, 37.4]
    reason = pd.read_parquet(out / "manifest_signals.parquet").set_index("path").loc["chart.csv", "reason"]
    assert reason == "columns not read: BP (text), Notes (text), hadm_id (identifier)"  # was: ""

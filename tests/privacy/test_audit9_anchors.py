"""``medmm signals ingest --anchors``: a time cell that is not a date-time is refused without quoting it
(a shifted column put a patient's name there: ``time 'Smith^John' is not an ISO date-time``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmm.errors import ConfigError
from medmm.signals.anchors import read_anchors


def test_bad_anchor_time_not_quoted(tmp_path: Path) -> None:
    table = tmp_path / "anchors.csv"
    table.write_text("patient_id,time,label\npat-0123456789abcdef0123,Smith^John,arrest\n")
    with pytest.raises(ConfigError) as err:
        read_anchors(table)
    message = str(err.value)
    assert "anchors.csv: line 2: column 'time'" in message
    assert "smith" not in message.lower()

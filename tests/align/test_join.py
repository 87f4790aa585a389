"""Alignment invariants (Hypothesis): no record mixes patients, every item is used at most once, study
ids are respected, time tolerance is honoured."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmm.align.join import join_items, parse_duration
from medmm.align.records import MODALITIES
from medmm.errors import ConfigError

item = st.tuples(
    st.sampled_from(MODALITIES),
    st.sampled_from(["p1", "p2", "p3"]),
    st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3"])),
    st.one_of(st.just(math.nan), st.floats(0, 10 * 86400)),
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"modality": m, "item_id": f"{m}-{i}", "patient_id": p, "study_id": s, "time": t}
            for i, (m, p, s, t) in enumerate(rows)
        ]
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(item, min_size=1, max_size=30), st.floats(0, 3 * 86400))
def test_no_record_mixes_patients(rows: list[tuple], tol: float) -> None:
    items = _frame(rows)
    owner = dict(zip(items["item_id"], items["patient_id"], strict=True))
    study_of = dict(zip(items["item_id"], items["study_id"], strict=True))
    rec = join_items(items, tol)
    used: list[str] = []
    for r in rec.to_dict(orient="records"):
        ids = [r[f"{m}_id"] for m in MODALITIES if r[f"has_{m}"]]
        assert ids, "a record without any modality"
        assert {owner[i] for i in ids} == {r["patient_id"]}
        for i in ids:
            if isinstance(study_of[i], str):
                assert study_of[i] == r["study_id"]
        used += ids
    assert len(used) == len(set(used))
    assert rec["record_id"].is_unique
    # each (patient, study) pair present in the input yields exactly one record
    pairs = {
        (p, s) for p, s in zip(items["patient_id"], items["study_id"], strict=True) if isinstance(s, str)
    }
    assert pairs <= set(zip(rec["patient_id"], rec["study_id"], strict=True))


def test_time_tolerance_decides_attachment() -> None:
    items = pd.DataFrame(
        {
            "modality": ["image", "signal"],
            "item_id": ["v", "w"],
            "patient_id": ["p", "p"],
            "study_id": ["s", None],
            "time": [0.0, 7200.0],
        }
    )
    assert len(join_items(items, parse_duration("3h"))) == 1
    assert len(join_items(items, parse_duration("1h"))) == 2


def test_nearest_item_is_chosen_and_labels_travel() -> None:
    items = pd.DataFrame(
        {
            "modality": ["image", "signal", "signal"],
            "item_id": ["v", "w1", "w2"],
            "patient_id": ["p"] * 3,
            "study_id": ["s", None, None],
            "time": [0.0, 50.0, 10.0],
        }
    )
    rec = join_items(items, 100.0, {"w2": {"pvc": 1}})
    assert rec["signal_id"].tolist() == ["w2"]
    assert rec["labels"].tolist() == ['{"pvc": 1}']


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="tolerance"):
        parse_duration("soon")
    with pytest.raises(ConfigError, match="modalities"):
        join_items(
            pd.DataFrame(
                {
                    "modality": ["video"],
                    "item_id": ["x"],
                    "patient_id": ["p"],
                    "study_id": ["s"],
                    "time": [0.0],
                }
            ),
            1.0,
        )

"""Plain and nested leave-one-record-out plumbing on synthetic records with known PVCs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medmm.anomaly.evaluate import leave_one_record_out, selection_grid
from medmm.anomaly.model import ScoreConfig
from medmm.anomaly.runs import RecordBeats

FS = 360.0


def _record(name: str, seed: int) -> tuple[RecordBeats, tuple[np.ndarray, list[str]]]:
    """160 narrow beats at ~0.8 s; 8 wide inverted premature beats with a compensatory pause."""
    rng = np.random.default_rng(seed)
    n = 160
    pvc = np.sort(rng.choice(np.arange(10, n - 10, 3), 8, replace=False))
    rr = 0.8 + rng.normal(0, 0.01, n)
    rr[pvc] = 0.5
    rr[pvc + 1] = 1.1
    peaks = (np.cumsum(rr) * FS).astype(np.int64)
    t = np.arange(peaks[-1] + int(FS)) / FS
    sig = rng.normal(0, 0.01, t.size)
    for i, p in enumerate(peaks):
        width, amp = (0.035, -1.4) if i in set(pvc.tolist()) else (0.01, 1.0)
        sig += amp * np.exp(-0.5 * ((t - p / FS) / width) ** 2)
    beats = pd.DataFrame({"record": name, "channel": "MLII", "sample": peaks})
    symbols = ["V" if i in set(pvc.tolist()) else "N" for i in range(n)]
    return RecordBeats(name, "MLII", beats, sig, FS), (peaks, symbols)


def test_nested_loro_chooses_on_other_records_and_pools_counts() -> None:
    parts = [_record(f"r{i}", i) for i in range(3)]
    records = [rb for rb, _ in parts]
    refs = {rb.record: ref for rb, ref in parts}
    grid = {"default": ScoreConfig(), "never": ScoreConfig(threshold=1e9)}
    res = leave_one_record_out(records, refs, seed=0, epochs=1, ensemble=2, grid=grid)
    assert res.nested is not None and res.nested["record"].tolist() == ["r0", "r1", "r2"]
    # a rule that never flags has min(Se, +P) = 0 on the other records: never chosen
    assert set(res.nested["chosen"]) == {"default"}
    # the nested counts of the default entry are the plain per-record counts of the default model
    np.testing.assert_array_equal(res.nested["tp"], res.per_record["model_tp"])
    np.testing.assert_array_equal(res.nested["fp"], res.per_record["model_fp"])
    assert res.nested["n_pos"].sum() == 24
    row = res.pooled.set_index("method").loc["model_nested"]
    assert row["tp"] == res.nested["tp"].sum() and row["fn"] == 24 - row["tp"]
    model = res.pooled.set_index("method").loc["model"]
    assert model["se"] >= 0.9 and model["ppv"] >= 0.9, model
    assert len(selection_grid()) == 54
    # the a-priori constants are scored on the same held-out embeddings (pooled row, beats columns)
    prior = res.pooled.set_index("method").loc["model_a_priori"]
    b = res.beats
    assert prior["tp"] == int((b["flag_a_priori"] & b["y"]).sum())
    assert prior["fp"] == int((b["flag_a_priori"] & ~b["y"]).sum())
    assert prior["auroc"] > 0.9


def test_design_grid_can_switch_off_the_v05_design() -> None:
    plain, design = selection_grid(), selection_grid(design=True)
    assert len(design) == 4 * len(plain)
    assert all(cfg.p_absent and cfg.qrs_floor == 0.05 for cfg in plain.values())
    combos = {(cfg.p_absent, cfg.qrs_floor) for cfg in design.values()}
    assert combos == {(True, 0.05), (True, 0.0), (False, 0.05), (False, 0.0)}
    first = next(iter(design))
    assert first.endswith("_qf0.05_p1")  # ties in the nested selection keep the listed-first entry

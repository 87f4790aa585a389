"""The ECG stress-set builder (bench/ecg_stress.py): semi-synthetic PVC-rich records from one real record's
beats - continuous splices, exact burden, real RR intervals, labels aligned with the written annotations,
bounded reuse of each PVC, deterministic for a seed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.ecg_stress import BURDENS, MAX_USES, build_stress_record, write_stress_set

FS = 360.0


def _source(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import wfdb

    rec = wfdb.rdrecord(str(root / "signals" / "mitdb_subset" / name))
    ann = wfdb.rdann(str(root / "signals" / "mitdb_subset" / name), "atr")
    return rec.p_signal[:, 0].astype(np.float64), np.asarray(ann.sample), list(ann.symbol)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["108", "116"])
def test_burden_rr_and_splices(shared_data: Path, name: str) -> None:
    x, r, sym = _source(shared_data, name)
    for burden in BURDENS:
        rec = build_stress_record(x, FS, r, sym, burden, seed=0)
        assert rec.burden == pytest.approx(burden, abs=0.005)
        prov = rec.provenance
        assert np.array_equal(prov["sample"].to_numpy(), rec.samples)
        # every beat's following RR is the one it had in the source record (coupling and pause kept)
        src_next = {int(s): int(n) - int(s) for s, n in itertools.pairwise(r)}
        rr_new = np.diff(rec.samples)
        rr_src = np.array([src_next[int(s)] for s in prov["source_sample"].to_numpy()[:-1]])
        assert np.array_equal(rr_new, rr_src)
        # no step at a cut: each jump is within the source's own sample-to-sample differences
        jump = np.abs(rec.signal[rec.junctions] - rec.signal[rec.junctions - 1])
        assert jump.max() <= np.quantile(np.abs(np.diff(x)), 0.99)
        # each real PVC is used at most MAX_USES times
        uses = prov[prov["symbol"] == "V"]["source_sample"].value_counts()
        assert uses.max() <= MAX_USES
        assert set(prov["symbol"]) <= {"N", "V"}


@pytest.mark.shared_data
def test_deterministic_for_a_seed(shared_data: Path) -> None:
    x, r, sym = _source(shared_data, "108")
    a = build_stress_record(x, FS, r, sym, 0.25, seed=3)
    b = build_stress_record(x, FS, r, sym, 0.25, seed=3)
    c = build_stress_record(x, FS, r, sym, 0.25, seed=4)
    assert np.array_equal(a.signal, b.signal) and a.symbols == b.symbols
    assert not np.array_equal(a.signal[: c.signal.size], c.signal[: a.signal.size])


@pytest.mark.shared_data
def test_written_annotations_sit_on_the_copied_beats(shared_data: Path, tmp_path: Path) -> None:
    import wfdb

    summary = write_stress_set(
        shared_data / "signals" / "mitdb_subset", tmp_path / "stress", ("108",), (0.5,)
    )
    assert summary["record"].tolist() == ["108_v50"] and summary["burden"].iloc[0] == 0.5
    x, _, _ = _source(shared_data, "108")
    ann = wfdb.rdann(str(tmp_path / "stress" / "108_v50"), "atr")
    y = wfdb.rdrecord(str(tmp_path / "stress" / "108_v50")).p_signal[:, 0]
    prov = pd.read_csv(tmp_path / "stress_provenance" / "108_v50.csv")
    assert np.array_equal(ann.sample, prov["sample"].to_numpy())
    assert list(ann.symbol) == prov["symbol"].tolist()
    assert list(ann.symbol).count("V") == len(ann.symbol) // 2
    for s, src, gain in prov[["sample", "source_sample", "gain"]].itertuples(index=False):
        diff = y[s - 20 : s + 21] - gain * x[src - 20 : src + 21]  # the same beat, but for the level ramp
        ramp = np.polyval(np.polyfit(np.arange(diff.size), diff, 1), np.arange(diff.size))
        assert np.abs(diff - ramp).max() < 0.01  # mV: 16-bit rounding (1 / 200 mV) of both records


@pytest.mark.shared_data
def test_bigeminy_with_normal_pairs(shared_data: Path) -> None:
    """40 %: bigeminy broken by occasional normal pairs - one or two normal beats between PVCs, half
    the events each - never a couplet, never three normal beats in a row."""
    x, r, sym = _source(shared_data, "116")
    rec = build_stress_record(x, FS, r, sym, 0.40, seed=0)
    s = "".join(rec.symbols)
    between = np.array([len(run) for run in s.strip("N").split("V") if run != ""])
    assert "VV" not in s and set(between.tolist()) == {1, 2}
    n_pairs = int((between == 2).sum())
    assert abs(n_pairs - s.count("V") / 2) <= 1


def test_unknown_burden_is_refused() -> None:
    with pytest.raises(ValueError, match="burden"):
        build_stress_record(np.zeros(1000), FS, np.array([100, 400]), ["N", "N"], 0.45)

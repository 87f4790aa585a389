"""Long records processed in time chunks give the whole-record outputs, with memory bounded by the chunk."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from medmm.pseudonym import Pseudonymizer
from medmm.signals.chunked import chunk_plan
from medmm.signals.discover import discover
from medmm.signals.pipeline import TABLES, run_signals
from medmm.signals.process import Anchor, Settings, process_record

KEY = Pseudonymizer(bytes.fromhex("ab" * 32))


def _run(root: Path, out: Path, only: list[str], **kw: object) -> Path:
    run_signals(root, out, workers=0, pseudonymizer=KEY, settings=Settings(**kw), only=only)  # type: ignore[arg-type]
    return out


def _assert_same_outputs(a: Path, b: Path) -> None:
    for name in TABLES:
        if not (a / f"{name}.parquet").exists():
            assert not (b / f"{name}.parquet").exists(), name
            continue
        fa, fb = pd.read_parquet(a / f"{name}.parquet"), pd.read_parquet(b / f"{name}.parquet")
        assert list(fa.columns) == list(fb.columns) and len(fa) == len(fb), name
        for c in fa.columns:
            if fa[c].dtype.kind == "f":
                np.testing.assert_allclose(fb[c], fa[c], rtol=1e-6, atol=1e-6, err_msg=f"{name}.{c}")
            else:
                assert fa[c].equals(fb[c]), f"{name}.{c}"
    arrays = sorted(p.relative_to(a) for p in (a / "windows").rglob("*.npy"))
    assert arrays and arrays == sorted(p.relative_to(b) for p in (b / "windows").rglob("*.npy"))
    for rel in arrays:
        x, y = np.load(a / rel), np.load(b / rel)
        assert x.shape == y.shape
        # bitwise equal except near a finite run's true start / end, where resample_poly's "line"
        # padding uses the run's slope: the chunk puts its cut-off end on the whole run's line, so these
        # samples differ by rounding only
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-9)
        assert ((x == y) | (np.isnan(x) & np.isnan(y))).mean() > 0.999


def test_chunked_record_equals_whole_record_on_mitdb(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "signals/mitdb_subset"
    plan = chunk_plan(root, "105", None, Settings(chunk_s=120))
    assert plan is not None and len(plan.spans) == 16  # 650000 samples at 360 Hz in 120 s chunks
    anchors = [Anchor("start", "105", 3.0), Anchor("seam", "105", 240.0), Anchor("end", "105", 1800.0)]
    kw = dict(chunk_s=120.0, anchors=anchors, before_s=20.0, after_s=20.0)
    whole = _run(root, tmp_path / "whole", ["105.hea"], chunk_records=False, **kw)
    chunked = _run(root, tmp_path / "chunked", ["105.hea"], chunk_records=True, **kw)
    _assert_same_outputs(whole, chunked)
    beats_w = pd.read_parquet(whole / "beats.parquet")
    beats_c = pd.read_parquet(chunked / "beats.parquet")
    assert len(beats_w) > 2000 and np.array_equal(beats_w["sample"], beats_c["sample"])
    assert beats_c["sample"].is_unique  # a beat at a seam is kept once
    windows = pd.read_parquet(chunked / "windows.parquet")
    assert set(windows["anchor"]) == {"", "start", "seam", "end"}


def _write_long_record(folder: Path, name: str, fs: float, minutes: float, seed: int = 0) -> None:
    import wfdb

    from medmm.signals.beats import simulate_ecg

    ecg, _ = simulate_ecg(fs, minutes * 60, seed=seed)
    second = 0.5 * np.roll(ecg, int(fs // 7))
    n = ecg.size
    ecg[int(119 * fs) : int(125 * fs)] = np.nan  # a gap across a seam (120 s chunks)
    second[int(238 * fs) : int(243 * fs)] = second[int(238 * fs)]  # a flat line across a seam
    second[int(300 * fs) : int(300 * fs) + 40] = 4.0959  # clipping at the ADC limit (code 32767)
    sig = np.column_stack([ecg, np.clip(second, -4.0959, 4.0959)])
    wfdb.wrsamp(
        name, fs=fs, units=["mV", "mV"], sig_name=["II", "V5"], p_signal=sig, fmt=["16", "16"],
        adc_gain=[1000.0, 8000.0], baseline=[0, 0], write_dir=str(folder),
    )  # fmt: skip
    assert n == sig.shape[0]


def test_chunked_equals_whole_with_gaps_flat_lines_and_clipping(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _write_long_record(root, "syn", 500.0, 9.0)
    kw = dict(chunk_s=120.0, anchors=[Anchor("gap", "syn", 121.0)])
    assert chunk_plan(root, "syn", None, Settings(chunk_s=120)) is not None
    whole = _run(root, tmp_path / "whole", ["syn.hea"], chunk_records=False, **kw)
    chunked = _run(root, tmp_path / "chunked", ["syn.hea"], chunk_records=True, **kw)
    _assert_same_outputs(whole, chunked)
    sig = pd.read_parquet(chunked / "signals.parquet").set_index("channel")
    frac = {c: sig[f"{c}_fraction"].to_dict() for c in ("missing", "flat", "saturated")}
    assert frac["missing"]["II"] > 0.01 and frac["flat"]["V5"] > 0.009 and frac["saturated"]["V5"] > 0


def test_short_or_multirate_records_are_read_whole(shared_data: Path) -> None:
    root = shared_data / "signals/mitdb_subset"
    assert chunk_plan(root, "100", None, Settings()) is not None  # 30 min > 2 x 10 min
    assert chunk_plan(root, "100", None, Settings(chunk_s=1200)) is None  # shorter than two chunks
    assert chunk_plan(root, "100", None, Settings(chunk_s=120, chunk_records=False)) is None


def _peak_bytes(root: Path, out: Path, chunked: bool) -> int:
    job = discover(root, only=["long.hea"])[0][0]
    tracemalloc.start()
    try:
        process_record(job, str(root), Settings(chunk_s=120.0, chunk_records=chunked), KEY, str(out))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_chunked_peak_memory_follows_the_chunk_not_the_record(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _write_long_record(root, "long", 360.0, 40.0, seed=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = _peak_bytes(root, tmp_path / "a", chunked=False)
    chunked = _peak_bytes(root, tmp_path / "b", chunked=True)
    assert chunked < whole / 3, (chunked, whole)


def test_chunked_multisegment_record_equals_whole_record(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "signals/wfdb_sample_data"
    rec = "multi-segment/s25047/s25047-2704-05-04-10-44"
    plan = chunk_plan(root, rec, None, Settings(chunk_s=120))
    assert plan is not None and plan.meta.format == "wfdb-multisegment"
    assert len(plan.spans) == 37 and [c.name for c in plan.meta.channels] == ["II", "V", "ABP"]
    kw = dict(chunk_s=120.0, anchors=[Anchor("start", rec, 100.0)])
    whole = _run(root, tmp_path / "whole", [f"{rec}.hea"], chunk_records=False, **kw)
    chunked = _run(root, tmp_path / "chunked", [f"{rec}.hea"], chunk_records=True, **kw)
    _assert_same_outputs(whole, chunked)
    sig = pd.read_parquet(chunked / "signals.parquet").set_index("channel")
    assert (sig["n_segments"] == 18).all() and sig.loc["II", "missing_fraction"] > 0.04  # leading gap
    assert sig.loc["II", "n_beats"] > 4000

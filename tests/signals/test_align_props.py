"""Property tests (Hypothesis) of the alignment maths: windows, chunks, index/time, tolerant joins."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from medmm.signals.align import (
    anchor_window,
    asof_join,
    chunk_spans,
    extract_window,
    nearest_within,
    rescale_index,
    sample_to_time,
    tile_windows,
    time_to_sample,
)

RATES = st.sampled_from([62.4725, 100.0, 125.0, 250.0, 256.0, 360.0, 500.0, 1000.0])
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(i=st.integers(0, 10**9), fs=RATES)
def test_sample_time_round_trip(i: int, fs: float) -> None:
    assert time_to_sample(sample_to_time(i, fs), fs) == i


@FAST
@given(i=st.integers(0, 10**7), a=RATES, b=RATES)
def test_rescale_is_nearest_and_round_trips_upward(i: int, a: float, b: float) -> None:
    j = rescale_index(i, a, b)
    assert abs(j / b - i / a) <= 0.5 / b + 1e-9  # nearest sample of the same instant
    if b >= a:  # going to a finer grid and back loses nothing
        assert rescale_index(j, b, a) == i


@FAST
@given(n=st.integers(0, 5000), length=st.integers(1, 800), step=st.integers(1, 800))
def test_tiled_windows_stay_inside_and_miss_nothing(n: int, length: int, step: int) -> None:
    starts = tile_windows(n, length, step)
    assert np.all(starts >= 0) and np.all(starts + length <= n)
    assert np.all(np.diff(starts) == step)
    # no off-by-one: one more step would leave the signal
    if starts.size:
        assert starts[-1] + step + length > n
    else:
        assert n < length


@FAST
@given(
    anchor=st.integers(-2000, 7000),
    before=st.integers(0, 1000),
    after=st.integers(0, 1000),
    n=st.integers(0, 5000),
)
def test_anchor_window_bounds_and_length(anchor: int, before: int, after: int, n: int) -> None:
    s = anchor_window(anchor, before, after, n)
    assert 0 <= s.start <= s.stop <= n
    assert s.pad_before >= 0 and s.pad_after >= 0
    assert s.pad_before + (s.stop - s.start) + s.pad_after == before + after
    if anchor - before >= 0 and anchor + after <= n:
        assert (s.start, s.stop, s.pad_before, s.pad_after) == (anchor - before, anchor + after, 0, 0)
    x = np.arange(n, dtype=float)
    w = extract_window(x, s)
    assert w.size == before + after
    if s.stop > s.start:  # the sample at the window's position k is sample (anchor - before + k)
        k = s.pad_before
        assert w[k] == anchor - before + k


@FAST
@given(n=st.integers(0, 5000), chunk=st.integers(1, 700), overlap=st.integers(0, 300))
def test_chunk_cores_tile_exactly(n: int, chunk: int, overlap: int) -> None:
    spans = chunk_spans(n, chunk, overlap)
    covered = np.zeros(n, dtype=int)
    for c in spans:
        assert 0 <= c.read_start <= c.keep_start < c.keep_stop <= c.read_stop <= n
        assert c.keep_start - c.read_start <= overlap and c.read_stop - c.keep_stop <= overlap
        covered[c.keep_start : c.keep_stop] += 1
    assert np.all(covered == 1)


@FAST
@given(
    q=st.lists(st.integers(0, 10_000), max_size=60),
    r=st.lists(st.integers(0, 10_000), max_size=60),
    tol=st.integers(0, 200),
)
def test_nearest_within_respects_tolerance_and_is_nearest(q: list[int], r: list[int], tol: int) -> None:
    qa, ra = np.array(q, dtype=np.int64), np.array(r, dtype=np.int64)
    idx = nearest_within(qa, ra, tol)
    for k, v in enumerate(qa):
        d = np.abs(ra - v) if ra.size else np.array([])
        if idx[k] >= 0:
            assert abs(ra[idx[k]] - v) <= tol
            assert abs(ra[idx[k]] - v) == d.min()
        else:
            assert ra.size == 0 or d.min() > tol


@FAST
@given(
    lt=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=40),
    rt=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=40, unique=True),
    tol=st.floats(0, 50, allow_nan=False),
)
def test_asof_join_tolerance_and_order(lt: list[float], rt: list[float], tol: float) -> None:
    left = pd.DataFrame({"t": lt, "i": range(len(lt))})
    right = pd.DataFrame({"t": rt, "v": np.arange(len(rt), dtype=float)})
    out = asof_join(left, right, on="t", tolerance=tol)
    assert out["i"].tolist() == list(range(len(lt)))  # left order kept, one row per left row
    lag = (out["t"] - out["t_right"]).abs()
    assert bool((lag[out["v"].notna()] <= tol).all())
    nearest = np.array([np.abs(np.array(rt) - t).min() for t in lt])
    assert bool((out["v"].isna() == (nearest > tol)).all())

"""Long EDF/EDF+ files processed in time chunks give the whole-file outputs, in chunk-bounded memory."""

from __future__ import annotations

import tracemalloc
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.signals.chunked import chunk_plan
from medmm.signals.discover import discover
from medmm.signals.pipeline import run_signals
from medmm.signals.process import Anchor, Settings, process_record
from medmm.signals.readers.edf import read_edf, read_edf_meta, read_edf_span
from tests.signals.test_chunked import _assert_same_outputs

KEY = Pseudonymizer(bytes.fromhex("ab" * 32))
FS = 256


def _write_edf(path: Path, minutes: float, seed: int = 0, rates: tuple[int, int] = (FS, FS)) -> None:
    import pyedflib

    from medmm.signals.beats import simulate_ecg

    sigs = []
    for k, fs in enumerate(rates):
        x, _ = simulate_ecg(fs, minutes * 60, seed=seed + k)
        if k == 1:
            x = 0.5 * x
            x[int(238 * fs) : int(243 * fs)] = x[int(238 * fs)]  # a flat line across a seam (120 s chunks)
            x[int(300 * fs) : int(300 * fs) + 40] = 5.0  # clipping at the physical maximum
        sigs.append(np.clip(x, -5.0, 5.0))
    f = pyedflib.EdfWriter(str(path), len(rates), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        f.setSignalHeaders(
            [
                dict(label=lbl, dimension="mV", sample_frequency=fs, physical_min=-5.0, physical_max=5.0,
                     digital_min=-32768, digital_max=32767)
                for lbl, fs in zip(("II", "V5"), rates, strict=True)
            ]
        )  # fmt: skip
        f.setStartdatetime(datetime(2020, 1, 2, 3, 4, 5))
        f.setPatientCode("P-001")
        f.writeSamples(sigs)
        f.writeAnnotation(121.0, 0.0, "Arousal")
        f.writeAnnotation(600.0, 30.0, "Sleep stage 2")
    finally:
        f.close()


def _run(root: Path, out: Path, only: list[str], **kw: object) -> Path:
    run_signals(root, out, workers=0, pseudonymizer=KEY, settings=Settings(**kw), only=only)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def long_edf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edf")
    _write_edf(root / "night.edf", 24.0)
    return root


def test_edf_spans_equal_the_whole_read(long_edf: Path) -> None:
    whole = read_edf(long_edf, "night.edf")
    meta = read_edf_meta(long_edf, "night.edf")
    assert meta is not None and meta.n_samples == whole.channels[0].data.size == 24 * 60 * FS
    assert [c.data.size for c in meta.channels] == [0, 0]
    assert [(c.name, c.fs, c.adc_limits) for c in meta.channels] == [
        (c.name, c.fs, c.adc_limits) for c in whole.channels
    ]
    assert [e.label for e in meta.events] == [e.label for e in whole.events] == ["Arousal", "Sleep stage 2"]
    assert meta.patient_key == whole.patient_key == "P-001" and meta.start == whole.start
    for a, b in [(0, 100), (30_001, 61_234), (whole.channels[0].data.size - 77, whole.channels[0].data.size)]:
        for x, ch in zip(read_edf_span(long_edf, "night.edf", a, b), whole.channels, strict=True):
            assert np.array_equal(x, ch.data[a:b])


def test_chunked_edf_equals_whole_file(long_edf: Path, tmp_path: Path) -> None:
    plan = chunk_plan(long_edf, "night.edf", None, Settings(chunk_s=120), kind="edf")
    assert plan is not None and len(plan.spans) == 12 and plan.source == "night.edf"
    anchors = [Anchor("seam", "night", 240.0), Anchor("end", "night", 1430.0)]
    kw = dict(chunk_s=120.0, anchors=anchors, anchor_events="Arousal", before_s=20.0, after_s=20.0)
    whole = _run(long_edf, tmp_path / "whole", ["night.edf"], chunk_records=False, **kw)
    chunked = _run(long_edf, tmp_path / "chunked", ["night.edf"], chunk_records=True, **kw)
    _assert_same_outputs(whole, chunked)
    beats_w, beats_c = (pd.read_parquet(d / "beats.parquet") for d in (whole, chunked))
    assert len(beats_w) > 2 * 1400 and np.array_equal(beats_w["sample"], beats_c["sample"])
    windows = pd.read_parquet(chunked / "windows.parquet")
    assert set(windows["anchor"]) == {"", "seam", "end", "Arousal"}
    sig = pd.read_parquet(chunked / "signals.parquet").set_index("channel")
    assert sig.loc["V5", "flat_fraction"] > 0.003 and sig.loc["V5", "saturated_fraction"] > 0
    events = pd.read_parquet(chunked / "events.parquet")
    assert sorted(events["label"]) == ["Arousal", "Sleep stage 2"]


def test_mixed_rate_edf_is_read_whole(tmp_path: Path) -> None:
    _write_edf(tmp_path / "mixed.edf", 5.0, rates=(256, 128))
    assert read_edf_meta(tmp_path, "mixed.edf") is None
    assert chunk_plan(tmp_path, "mixed.edf", None, Settings(chunk_s=60), kind="edf") is None
    out = _run(tmp_path, tmp_path / "out", ["mixed.edf"], chunk_s=60.0)
    assert sorted(pd.read_parquet(out / "signals.parquet")["fs"]) == [128.0, 256.0]


def test_short_or_annotation_only_edf_is_read_whole(long_edf: Path, shared_data: Path) -> None:
    assert chunk_plan(long_edf, "night.edf", None, Settings(chunk_s=720), kind="edf") is None  # < 2 chunks
    assert (
        chunk_plan(long_edf, "night.edf", None, Settings(chunk_s=120, chunk_records=False), kind="edf")
        is None
    )
    root = shared_data / "signals/wfdb_sample_data"
    assert chunk_plan(root, "test_edfann.edf", None, Settings(chunk_s=1), kind="edf") is None


def _peak_bytes(root: Path, out: Path, chunked: bool) -> int:
    job = discover(root, only=["night.edf"])[0][0]
    out.mkdir()
    tracemalloc.start()
    try:
        process_record(job, str(root), Settings(chunk_s=120.0, chunk_records=chunked), KEY, str(out))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_chunked_edf_peak_memory_follows_the_chunk_not_the_file(long_edf: Path, tmp_path: Path) -> None:
    whole = _peak_bytes(long_edf, tmp_path / "a", chunked=False)
    chunked = _peak_bytes(long_edf, tmp_path / "b", chunked=True)
    assert chunked < whole / 3, (chunked, whole)

"""`medmm share` on a signals run of the real WFDB sample data (MIT-BIH's ``100``, MIMIC matched-subset
multi-segment records whose names hold the real recording date, an EDF with annotations ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from medmm.share import share_run
from medmm.signals.pipeline import run_signals


def test_real_wfdb_signals_run_shares_without_record_names(
    shared_data: Path, tmp_path: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    run = tmp_path / "run"
    run_signals(shared_data / "signals" / "wfdb_sample_data", run, workers=0, key_file=key)
    manifest = pd.read_parquet(run / "manifest_signals.parquet")
    records = sorted(set(pd.read_parquet(run / "signals.parquet")["record"]))
    assert "100" in records and any("multi-segment/" in r for r in records)
    paths = manifest["path"].tolist()
    # what a byte scan can tell apart from numbers: every path, file name and record name but the
    # bare MIT-BIH number "100" (checked as a whole cell below; the share's self-check does the same)
    strings = sorted(
        {*paths, *(p.rsplit("/", 1)[-1] for p in paths), *(r for r in records if not r.isdigit())}
        | {r.rsplit("/", 1)[-1] for r in records if not r.isdigit()}
        | {str(shared_data)}
    )
    assert strings_in_run(run, strings)
    report = share_run(run, tmp_path / "share", key_file=key, with_windows=True)
    share = tmp_path / "share"
    assert strings_in_run(share, strings) == []
    for name in ("signals", "beats", "windows", "events", "manifest_signals"):
        frame = pd.read_parquet(share / f"{name}.parquet")
        assert not frame["record"].isin(records).any(), name
    assert report["files"]["windows"] == len(list((run / "windows").rglob("*.npy")))
    windows = pd.read_parquet(share / "windows.parquet")
    assert windows["path"].notna().all()
    for path, row in windows.groupby("path")["row"].max().items():
        assert np.load(share / str(path), mmap_mode="r").shape[0] > row
    src = pd.read_parquet(run / "beats.parquet").groupby("record").size()
    dst = pd.read_parquet(share / "beats.parquet").groupby("record").size()
    assert sorted(src.tolist()) == sorted(dst.tolist())  # same records, renamed, nothing lost
    quarantined = pd.read_parquet(share / "manifest_signals.parquet").query("status == 'quarantined'")
    assert len(quarantined) == (manifest["status"] == "quarantined").sum() > 0
    assert quarantined["reason"].str.contains("fil-").all()

"""A tiny generated run directory (records + model inputs) whose labels depend on every modality."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medmm.align.records import RecordRow
from medmm.models.store import write_store
from medmm.tables import write_table


def make_tiny_run(root: Path, n: int = 48, seed: int = 0) -> Path:
    """``n`` records of ``n // 2`` patients; each modality abnormal with p=0.3; some modalities missing."""
    rng = np.random.default_rng(seed)
    ab = rng.random((n, 3)) < 0.3
    has = rng.random((n, 3)) < 0.8
    has[~has.any(axis=1), 0] = True
    img = rng.normal(0, 0.3, (n, 1, 16, 16)).astype(np.float32)
    img[ab[:, 0], :, 5:11, 5:11] += 2.0
    rep = np.zeros((n, 9), np.float32)
    rep[np.arange(n), np.where(ab[:, 1], 0, 1)] = 1.0
    sig = rng.normal(0, 0.2, (n, 1, 64)).astype(np.float32)
    sig[ab[:, 2], :, 20:30] += 3.0
    feats = rng.normal(0, 1, (n, 2)).astype(np.float32)
    ids = [f"{i:03d}" for i in range(n)]
    write_store(root / "inputs" / "image", [f"img-{i}" for i in ids], img)
    write_store(root / "inputs" / "report", [f"rep-{i}" for i in ids], rep)
    write_store(root / "inputs" / "signal", [f"sig-{i}" for i in ids], sig, feats)
    rows = []
    for i, k in enumerate(ids):
        abnormal = bool((ab[i] & has[i]).any())
        rows.append(
            RecordRow(
                record_id=f"rec-{k}",
                patient_id=f"pat-{i // 2:03d}",
                study_id=f"stu-{k}",
                image_id=f"img-{k}" if has[i, 0] else None,
                report_id=f"rep-{k}" if has[i, 1] else None,
                signal_id=f"sig-{k}" if has[i, 2] else None,
                has_image=bool(has[i, 0]),
                has_report=bool(has[i, 1]),
                has_signal=bool(has[i, 2]),
                labels=json.dumps({"abnormal": int(abnormal), "image_abnormal": int(ab[i, 0])}),
            )
        )
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def tiny_config(run_dir: Path, out_dir: Path, fusion: str = "attention", **train: object) -> dict:
    """A small, fast training config for :func:`make_tiny_run` outputs."""
    settings = {"epochs": 3, "batch_size": 8, "progress": False, "seed": 0, "n_boot": 20, **train}
    return {
        "run_dir": str(run_dir),
        "out_dir": str(out_dir),
        "fusion": fusion,
        "embed_dim": 8,
        "modalities": {"image": {"out_dim": 8}, "report": {"out_dim": 8}, "signal": {"out_dim": 8}},
        "tasks": [{"name": "diagnosis", "labels": ["abnormal", "image_abnormal"]}],
        "train": settings,
    }


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests run under xdist on 2 shared cores: one intra-op thread each avoids oversubscription."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_run(tmp_path: Path) -> Path:
    return make_tiny_run(tmp_path / "run")


@pytest.fixture()
def records_frame(tiny_run: Path) -> pd.DataFrame:
    return pd.read_parquet(tiny_run / "records.parquet")

"""Real CUDA runs (skipped without a GPU): training with the default mixed precision, float16 with the
GradScaler, deterministic repeats, pinned batches, CPU/GPU agreement of scores, and the anomaly model.

On a GPU machine: ``pytest -p no:cacheprovider tests/models/test_devices_gpu.py`` (about a minute), then
``python -m bench models`` for throughput and peak GPU memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_run, tiny_config

from medmm.devices import autocast_dtype
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.runner import train_from_config
from medmm.models.store import open_stores
from medmm.models.train import make_loader
from medmm.predict.predict import predict_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("gpu") / "run", n=48)


def _train(run: Path, out: Path, **train: Any) -> dict:
    return train_from_config(TrainConfig.model_validate(tiny_config(run, out, **train)), device=CUDA)


def test_default_amp_dtype_matches_the_gpu() -> None:
    major, _ = torch.cuda.get_device_capability()
    assert autocast_dtype(CUDA) == (torch.bfloat16 if major >= 8 else torch.float16)


def test_gpu_training_is_deterministic_and_saves_cpu_tensors(run: Path, tmp_path: Path) -> None:
    a = _train(run, tmp_path / "a", modality_dropout=0.3)
    b = _train(run, tmp_path / "b", modality_dropout=0.3)
    assert a["device"].startswith("cuda")
    assert a["folds"][0]["history"] == b["folds"][0]["history"]
    sa = load_checkpoint(tmp_path / "a" / "model.pt")["state_dict"]
    sb = load_checkpoint(tmp_path / "b" / "model.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(np.isfinite(h["train_loss"]) for h in a["folds"][0]["history"])


def test_float16_with_grad_scaler_on_the_gpu(run: Path, tmp_path: Path) -> None:
    from medmm.models.build import build_model, input_shapes
    from medmm.models.train import fit, seed_everything

    cfg = TrainConfig.model_validate(tiny_config(run, tmp_path / "f", epochs=2))
    records = pd.read_parquet(run / "records.parquet")
    stores = open_stores(run, ["image", "report", "signal"])
    ds = MultimodalDataset(records, stores, cfg.label_names())
    seed_everything(0)
    res = fit(build_model(cfg, input_shapes(stores)), cfg, ds, None, device=CUDA, amp_dtype=torch.float16)
    assert all(np.isfinite(h["train_loss"]) for h in res.history)
    assert next(res.model.parameters()).dtype == torch.float32


def test_pinned_batches_and_cpu_gpu_agreement(run: Path, tmp_path: Path) -> None:
    _train(run, tmp_path / "m", epochs=2)
    ckpt = tmp_path / "m" / "model.pt"
    records = pd.read_parquet(run / "records.parquet")
    ds = MultimodalDataset(
        records, open_stores(run, ["image", "report", "signal"]), ["abnormal", "image_abnormal"]
    )
    batch = next(iter(make_loader(ds, 8, False, 0, CUDA)))
    assert batch.mask.is_pinned() and all(x.is_pinned() for x in batch.inputs.values())
    predict_run(ckpt, run, out=tmp_path / "gpu.parquet", device="cuda")
    predict_run(ckpt, run, out=tmp_path / "cpu.parquet", device="cpu")
    g, c = pd.read_parquet(tmp_path / "gpu.parquet"), pd.read_parquet(tmp_path / "cpu.parquet")
    assert (g["record_id"] == c["record_id"]).all()
    # float32 inference on both; cuDNN may use TF32 convolutions on Ampere and later
    np.testing.assert_allclose(g["score"], c["score"], atol=2e-3)


def test_anomaly_training_on_the_gpu(tmp_path: Path) -> None:
    from medmm.anomaly.features import BeatInputs
    from medmm.anomaly.score import embed
    from medmm.anomaly.train import train_beat_model

    rng = np.random.default_rng(0)
    bi = BeatInputs(
        rng.normal(size=(512, 2, 64)).astype("f4"),
        rng.normal(size=(512, 3)).astype("f4"),
        np.zeros(512, np.int64),
    )
    a = train_beat_model(bi, seed=0, epochs=2, ensemble=2, device="cuda")
    b = train_beat_model(bi, seed=0, epochs=2, ensemble=2, device="cuda")
    for na, nb in zip(a.nets, b.nets, strict=True):
        assert next(na.parameters()).device.type == "cpu"  # returned on the CPU
        sa, sb = na.state_dict(), nb.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    z_gpu = embed(a, bi.waves, device="cuda")
    assert next(a.net.parameters()).device.type == "cpu"  # embed leaves the model where it was
    np.testing.assert_allclose(z_gpu, embed(a, bi.waves, device="cpu"), atol=1e-3)

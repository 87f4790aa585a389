"""A training step reads no data back from the device: the checks that need the data (every sample has
a modality; which labels are known) run on the host batch before the copy, and the loss selects the
known labels by those host-made indices - with the same result bit for bit.

Before, `check_mask` did `.tolist()` and `masked_bce` did `known.any()` and boolean indexing on the
device tensors: each made the host wait for the GPU at every step. The meta device stands in for a GPU
here: its tensors have shapes but no data, so any read of device data raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import make_tiny_run, tiny_config
from torch.nn import functional as F

from medmm.models.build import build_model, input_shapes
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset, collate_records
from medmm.models.fusion import EmptySampleError, check_mask
from medmm.models.fusion.registry import FUSIONS
from medmm.models.losses import MultiTaskLoss, known_targets, masked_bce
from medmm.models.model import MultimodalModel
from medmm.models.store import open_stores
from medmm.models.train import _known_labels, _task_losses, _to_device

META = torch.device("meta")
MODS = ["image", "report", "signal"]


def test_check_mask_reads_no_device_data_but_checks_the_shape() -> None:
    check_mask(torch.ones(4, 2, dtype=torch.bool, device=META), ["a", "b"])  # no .tolist() of GPU data
    with pytest.raises(ValueError, match=r"must be bool \[B, 2\]"):
        check_mask(torch.ones(4, 3, dtype=torch.bool, device=META), ["a", "b"])
    with pytest.raises(ValueError, match=r"must be bool \[B, 2\]"):
        check_mask(torch.ones(4, 2, device=META), ["a", "b"])
    with pytest.raises(EmptySampleError, match=r"1 sample\(s\) \(rows \[1\]\)"):  # on the host: checked
        check_mask(torch.tensor([[True, False], [False, False]]), ["a", "b"])


def _reference_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: Any = None) -> torch.Tensor:
    """masked_bce as it was: boolean mask on the targets (reads the data: a device sync on a GPU)."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), torch.nan_to_num(targets, nan=0.0).float(), reduction="none", pos_weight=pos_weight
    )
    return loss[known].mean()


@pytest.mark.parametrize("shape", [(1, 1), (5, 2), (8, 3), (32, 2), (33, 5), (128, 4)])
@pytest.mark.parametrize("unknown", [0.0, 0.1, 0.5, 0.9])
def test_masked_bce_with_host_indices_is_bit_identical(shape: tuple[int, int], unknown: float) -> None:
    gen = torch.Generator().manual_seed(shape[0] * 100 + int(unknown * 10))
    for pos_weight in (None, torch.rand(shape[1], generator=gen) + 0.5):
        logits = (torch.randn(shape, generator=gen) * 3).requires_grad_()
        targets = (torch.rand(shape, generator=gen) < 0.5).float()
        targets[torch.rand(shape, generator=gen) < unknown] = float("nan")
        want = _reference_bce(logits, targets, pos_weight)
        got = masked_bce(logits, targets, pos_weight, known=known_targets(targets))
        assert got.dtype == want.dtype and torch.equal(got, want)
        assert torch.equal(masked_bce(logits, targets, pos_weight), want)  # without indices: the same
        if want.requires_grad:
            (g_want,) = torch.autograd.grad(want, logits)
            (g_got,) = torch.autograd.grad(got, logits)
            assert torch.equal(g_got, g_want)


def test_masked_bce_with_no_known_label_is_zero_with_zero_gradient() -> None:
    logits = torch.randn(4, 2).requires_grad_()
    targets = torch.full((4, 2), float("nan"))
    loss = masked_bce(logits, targets, known=known_targets(targets))
    assert loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad, torch.zeros_like(logits))


def test_masked_bce_reads_no_device_data_given_host_indices() -> None:
    host = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), float("nan")]])
    known = known_targets(host)
    assert known.tolist() == [0, 2, 3]
    loss = masked_bce(torch.zeros(3, 2, device=META), host.to(META), known=known.to(META))
    assert loss.device == META and loss.shape == ()
    empty = known_targets(torch.full((3, 2), float("nan")))
    assert masked_bce(torch.zeros(3, 2, device=META), host.to(META), known=empty.to(META)).shape == ()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("syncfree") / "run", n=16)


def _parts(run: Path, fusion: str, **cfg: Any) -> tuple[TrainConfig, MultimodalDataset, MultimodalModel]:
    config = TrainConfig.model_validate({**tiny_config(run, run / "m", fusion, epochs=2), **cfg})
    stores = open_stores(run, MODS)
    ds = MultimodalDataset(pd.read_parquet(run / "records.parquet"), stores, config.label_names())
    return config, ds, build_model(config, input_shapes(stores))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_a_whole_training_step_reads_no_device_data(run: Path, fusion: str) -> None:
    tasks = [{"name": "dx", "labels": ["abnormal"]}, {"name": "img", "labels": ["image_abnormal"]}]
    _, ds, model = _parts(run, fusion, tasks=tasks)
    model.to(META)
    criterion = MultiTaskLoss(["dx", "img"], "uncertainty").to(META)
    host = collate_records([ds[i] for i in range(8)])
    host.labels[0, 1] = float("nan")  # an unknown label
    known = _known_labels(model, host.labels, META)  # the loop's own steps, on a data-less device
    batch = _to_device(host, model, META)
    model.train()
    out = model(batch.inputs, batch.index, batch.mask, batch.features)
    loss = criterion(_task_losses(model, out, batch.labels, known))
    loss.backward()
    assert loss.device == META and known["img"].device == META
    assert all(p.grad is None or p.grad.device == META for p in model.parameters())


def test_the_host_check_runs_before_the_copy(run: Path) -> None:
    _, ds, model = _parts(run, "attention")
    host = collate_records([ds[i] for i in range(4)])
    host.mask[2] = False  # a sample left with no modality
    with pytest.raises(EmptySampleError, match=r"rows \[2\]"):
        _to_device(host, model, META)


def test_fit_gives_the_loss_host_made_indices(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medmm.models.train as train

    calls: list[torch.Tensor | None] = []

    def spy(logits: torch.Tensor, targets: torch.Tensor, pos_weight: Any = None, known: Any = None) -> Any:
        calls.append(known)
        return masked_bce(logits, targets, pos_weight, known=known)

    monkeypatch.setattr(train, "masked_bce", spy)
    train.seed_everything(0)
    config, ds, model = _parts(run, "attention")
    train.fit(model, config, ds, ds, device=torch.device("cpu"))
    assert len(calls) == 2 * 2 * 2  # 2 epochs x (2 training + 2 validation batches of 8)
    assert all(isinstance(k, torch.Tensor) and k.dtype == torch.long for k in calls)

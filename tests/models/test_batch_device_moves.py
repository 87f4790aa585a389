"""`Batch.to(device, non_blocking=)` and `Batch.pin_memory()`: torch's own DataLoader `pin_memory=True`
pins a `Batch` (before, it handed the dataclass back unpinned, so train.py had its own pinned collate
and its own `batch_to`), and CPU runs never ask for pinning (a CPU-only torch refuses it).

Real pinning needs a GPU: `test_real_pinned_loader_on_a_gpu` runs only with CUDA; on the CPU the
pinning path is followed with `Tensor.pin_memory` replaced by a recording copy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import torch
from conftest import make_tiny_run
from torch.utils.data import DataLoader
from torch.utils.data._utils.pin_memory import pin_memory as torch_pin_memory

from medmm.models.data import Batch, MultimodalDataset, collate_records
from medmm.models.store import open_stores
from medmm.models.train import make_loader

MODS = ["image", "report", "signal"]


def _tensors(b: Batch) -> Iterator[torch.Tensor]:
    yield from b.inputs.values()
    yield from b.index.values()
    yield from b.features.values()
    yield b.mask
    yield b.labels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> MultimodalDataset:
    run = make_tiny_run(tmp_path_factory.mktemp("batchdev") / "run", n=12)
    records = pd.read_parquet(run / "records.parquet")
    return MultimodalDataset(records, open_stores(run, MODS), ["abnormal", "image_abnormal"])


@pytest.fixture()
def batch(dataset: MultimodalDataset) -> Batch:
    return collate_records([dataset[i] for i in range(6)])


def _assert_same(a: Batch, b: Batch) -> None:
    assert type(b) is Batch and b.record_ids == a.record_ids
    for part in ("inputs", "index", "features"):
        assert getattr(a, part).keys() == getattr(b, part).keys()
    for x, y in zip(_tensors(a), _tensors(b), strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)


@pytest.mark.parametrize("non_blocking", [False, True])
def test_to_the_cpu_round_trip_is_equal(batch: Batch, non_blocking: bool) -> None:
    assert batch.features  # the signal features travel too
    moved = batch.to(torch.device("cpu"), non_blocking=non_blocking)
    _assert_same(batch, moved)
    _assert_same(batch, moved.to("cpu"))


def test_to_moves_every_tensor(batch: Batch) -> None:
    # the meta device stands in for a GPU: a move that forgot a tensor would leave it on the CPU
    moved = batch.to(torch.device("meta"), non_blocking=True)
    assert all(t.device.type == "meta" for t in _tensors(moved))
    assert all(t.device.type == "cpu" for t in _tensors(batch))  # the host batch is left as it was
    assert moved.record_ids == batch.record_ids


@pytest.fixture()
def recorded_pinning(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """``Tensor.pin_memory`` replaced by a copy that records its input (pinning itself needs a GPU)."""
    seen: list[torch.Tensor] = []

    def fake_pin(self: torch.Tensor, *args: object) -> torch.Tensor:
        seen.append(self)
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    return seen


def test_pin_memory_returns_a_batch_of_every_tensor_pinned(
    batch: Batch, recorded_pinning: list[torch.Tensor]
) -> None:
    pinned = batch.pin_memory()
    _assert_same(batch, pinned)
    assert {id(t) for t in recorded_pinning} == {id(t) for t in _tensors(batch)}


def test_torch_dataloader_pins_a_batch_natively(batch: Batch, recorded_pinning: list[torch.Tensor]) -> None:
    # what DataLoader(pin_memory=True) does to each batch; a class without pin_memory comes back as is
    pinned = torch_pin_memory(batch)
    assert pinned is not batch
    _assert_same(batch, pinned)
    assert len(recorded_pinning) == len(list(_tensors(batch)))


def test_the_loader_pins_for_a_gpu_only(dataset: MultimodalDataset) -> None:
    for device, pin in [(None, False), (torch.device("cpu"), False), (torch.device("cuda"), True)]:
        loader = make_loader(dataset, 4, False, 0, device)
        assert loader.pin_memory is pin, device
        assert loader.collate_fn is collate_records  # one collate; pinning is the loader's own flag


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU-only torch does")
def test_cpu_runs_never_pin(dataset: MultimodalDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # pinning needs an accelerator: a CPU-only torch refuses it ...
    with pytest.raises(RuntimeError):
        torch.zeros(1).pin_memory()
    with pytest.raises(RuntimeError):
        collate_records([dataset[0]]).pin_memory()

    # ... so a CPU loader must never ask for it (make it fail loudly if it did)
    def refuse(self: torch.Tensor, *args: object) -> torch.Tensor:
        raise AssertionError("pinned on a CPU run")

    monkeypatch.setattr(torch.Tensor, "pin_memory", refuse)
    batches = list(make_loader(dataset, 4, False, 0, torch.device("cpu")))
    assert sum(len(b.record_ids) for b in batches) == len(dataset)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs a GPU")
def test_real_pinned_loader_on_a_gpu(dataset: MultimodalDataset) -> None:
    cuda = torch.device("cuda")
    for loader in (make_loader(dataset, 4, False, 0, cuda), DataLoader(dataset, 4, collate_fn=collate_records,
                                                                         pin_memory=True)):  # fmt: skip
        host = next(iter(loader))
        assert all(t.is_pinned() for t in _tensors(host))
        moved = host.to(cuda, non_blocking=True)
        assert all(t.device.type == "cuda" for t in _tensors(moved))
        _assert_same(host, moved.to("cpu"))

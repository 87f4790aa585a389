"""Checkpoints written on a GPU machine load on a CPU-only one.

torch.save records each tensor's device as a location tag ("cuda:0") in the file; a plain
``torch.load`` on a machine without CUDA then fails. These tests write real CUDA-tagged files - torch's
own serializer with a location tagger that answers "cuda:0", i.e. the bytes a GPU machine writes - and
load them with medmm's loaders (``weights_only=True``, ``map_location="cpu"``), which must give exactly
the weights and scores of the CPU-saved originals.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_run, tiny_config
from torch import serialization

from medmm.anomaly.model import CARD_FILE, WEIGHTS_FILE, AnomalyModel, BeatAutoencoder, load_model, save_model
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.runner import load_model as load_multimodal
from medmm.models.runner import train_from_config
from medmm.predict.predict import predict_run


@contextmanager
def saved_as_if_on(location: str) -> Iterator[None]:
    """Make torch.save tag every storage with ``location`` (what it writes for tensors on that device)."""

    def tagger(obj: object) -> str:
        return location

    def deserializer(obj: object, where: str) -> None:
        return None  # loading is left to torch's own handlers

    serialization.register_package(-1000, tagger, deserializer)
    try:
        yield
    finally:
        serialization._package_registry[:] = [
            entry for entry in serialization._package_registry if entry[1] is not tagger
        ]


def _retag(path: Path, location: str) -> None:
    """Rewrite a torch checkpoint file so that its tensors carry ``location``."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    buf = io.BytesIO()
    with saved_as_if_on(location):
        torch.save(data, buf)
    path.write_bytes(buf.getvalue())


def _locations(path: Path) -> set[str]:
    """Location tags of the storages in a torch zip checkpoint (the persistent ids of its pickle)."""
    import pickle

    found: set[str] = set()

    class Tags(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            return lambda *args, **kwargs: None  # nothing is rebuilt: only the tags are read

        def persistent_load(self, pid: tuple) -> None:
            found.add(str(pid[3]))  # ("storage", storage type, key, location, numel)

    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        Tags(io.BytesIO(zf.read(pkl))).load()
    return found


def test_tagger_writes_what_a_gpu_machine_writes(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    with saved_as_if_on("cuda:0"):
        torch.save({"w": torch.arange(3.0)}, path)
    assert _locations(path) == {"cuda:0"}
    if not torch.cuda.is_available():  # the failure medmm's loaders must avoid
        with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device"):
            torch.load(path, weights_only=True)
    assert torch.load(path, weights_only=True, map_location="cpu")["w"].tolist() == [0.0, 1.0, 2.0]


def test_multimodal_checkpoint_from_a_gpu_loads_on_the_cpu(tmp_path: Path) -> None:
    run = make_tiny_run(tmp_path / "run", n=16)
    train_from_config(TrainConfig.model_validate(tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)))
    ckpt = tmp_path / "m" / "model.pt"
    assert _locations(ckpt) == {"cpu"}  # medmm saves CPU tensors whatever it trained on
    predict_run(ckpt, run, out=tmp_path / "cpu.parquet", device="cpu")
    gpu = tmp_path / "gpu" / "model.pt"
    gpu.parent.mkdir()
    shutil.copy(ckpt, gpu)
    shutil.copy(tmp_path / "m" / "splits.parquet", gpu.parent / "splits.parquet")
    _retag(gpu, "cuda:0")
    assert _locations(gpu) == {"cuda:0"}

    state = load_checkpoint(gpu)["state_dict"]
    assert {t.device.type for t in state.values()} == {"cpu"}
    model, _, _ = load_multimodal(gpu, torch.device("cpu"))
    original = load_checkpoint(ckpt)["state_dict"]
    assert all(torch.equal(state[k], original[k]) for k in original)
    assert all(p.device.type == "cpu" for p in model.parameters())

    predict_run(gpu, run, out=tmp_path / "gpu.parquet", device="cpu")
    a, b = pd.read_parquet(tmp_path / "cpu.parquet"), pd.read_parquet(tmp_path / "gpu.parquet")
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    assert len(a) == 2 * 16  # every record, both labels


def test_anomaly_weights_from_a_gpu_load_on_the_cpu(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = AnomalyModel(net=BeatAutoencoder(), members=[BeatAutoencoder()])
    save_model(model, tmp_path, device="cuda")
    weights = tmp_path / WEIGHTS_FILE
    _retag(weights, "cuda:0")
    assert _locations(weights) == {"cuda:0"}
    card = json.loads((tmp_path / CARD_FILE).read_text())  # the card carries the weights' hash
    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / CARD_FILE).write_text(json.dumps(card))

    loaded = load_model(tmp_path)
    for net, ref in zip(loaded.nets, model.nets, strict=True):
        assert all(p.device.type == "cpu" for p in net.parameters())
        sa, sb = net.state_dict(), ref.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sb)

"""Build a :class:`MultimodalModel` from a :class:`TrainConfig` and the input shapes of the stores.

>>> from medmm.models.config import ReportInputConfig, TrainConfig
>>> cfg = TrainConfig.model_validate({"run_dir": ".", "fusion": "sum",
...     "modalities": {"report": {"out_dim": 8}}, "tasks": [{"name": "dx", "labels": ["abnormal"]}]})
>>> build_model(cfg, {"report": {"shape": [12], "n_features": 0}}).modalities
['report']

The report encoder follows ``config.report_input``: with ``text`` it embeds the token ids (the store's
``n_features`` is then the ids per report), the dense input is the item shape.

>>> cfg = TrainConfig.model_validate({"run_dir": ".", "fusion": "sum", "modalities": {"report": {}},
...     "report_input": {"features": ["text"], "text": {"buckets": 64, "dim": 4}},
...     "tasks": [{"name": "dx", "labels": ["abnormal"]}]})
>>> build_model(cfg, {"report": {"shape": [0], "n_features": 8}}).encoders["report"].text.num_embeddings
65
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from medmm.errors import ConfigError
from medmm.models.config import ReportInputConfig, TrainConfig
from medmm.models.encoders import ImagingEncoder, ReportEncoder, SignalEncoder
from medmm.models.model import MultimodalModel
from medmm.models.store import ArrayStore

__all__ = ["build_encoder", "build_model", "input_shapes"]


def input_shapes(stores: Mapping[str, ArrayStore]) -> dict[str, dict[str, Any]]:
    """Per modality: item ``shape`` and ``n_features`` (stored in checkpoints to rebuild the model)."""
    return {m: {"shape": list(s.item_shape), "n_features": s.n_features} for m, s in stores.items()}


def build_encoder(
    modality: str, cfg: Any, shape: list[int], n_features: int, report_input: ReportInputConfig | None = None
) -> nn.Module:
    """The encoder of one modality for items of ``shape`` (``report_input``: the report branch's inputs,
    default findings only)."""
    if modality == "image":
        if len(shape) != cfg.spatial_dims + 1:
            raise ConfigError(
                f"image items have shape {shape} but spatial_dims={cfg.spatial_dims}; expected [C, *spatial]"
            )
        return ImagingEncoder(cfg.out_dim, cfg.arch or "resnet_small", cfg.spatial_dims, shape[0])
    if modality == "report":
        ri = report_input or ReportInputConfig()
        text = "text" in ri.features  # without text: no embedding (text_buckets 0), the finding-vector MLP
        return ReportEncoder(
            int(shape[0]), cfg.out_dim, text_buckets=ri.text.buckets if text else 0, text_dim=ri.text.dim
        )
    if modality == "signal":
        return SignalEncoder(cfg.out_dim, int(shape[0]), n_features, cfg.arch or "cnn")
    raise ConfigError(f"no encoder for modality {modality!r}")


def build_model(config: TrainConfig, shapes: Mapping[str, Mapping[str, Any]]) -> MultimodalModel:
    """Encoders for the configured modalities, the configured fusion, one head per task."""
    missing = [m for m in config.modalities if m not in shapes]
    if missing:
        raise ConfigError(f"no model inputs for modalities {missing}; run `medmm align` with them")
    encoders = {
        m: build_encoder(m, c, list(shapes[m]["shape"]), int(shapes[m]["n_features"]), config.report_input)
        for m, c in config.modalities.items()
    }
    return MultimodalModel(encoders, config.fusion, [t.spec() for t in config.tasks], config.embed_dim)

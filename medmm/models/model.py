"""The multimodal model: encoders (run only on samples that have the modality) -> fusion -> heads.

Inputs per modality are the *present* samples only (``inputs[m]`` ``[n_m, ...]`` with ``index[m]`` the
batch rows they belong to); the encoder output is scattered into ``[B, D_m]`` and the fusion masks the
rest, so an absent modality neither runs its encoder nor receives gradient.

>>> import torch
>>> from medmm.models.heads import TaskSpec
>>> from medmm.models.encoders import ReportEncoder
>>> tasks = [TaskSpec("dx", "multilabel", ("abnormal",))]
>>> m = MultimodalModel({"report": ReportEncoder(6, 8)}, "sum", tasks, 8)
>>> mask = torch.ones(2, 1, dtype=torch.bool)
>>> out = m({"report": torch.zeros(2, 6)}, {"report": torch.tensor([0, 1])}, mask)
>>> tuple(out.logits["dx"].shape), tuple(out.weights.shape)
((2, 1), (2, 1))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medmm.models.fusion import build_fusion
from medmm.models.heads import TaskSpec, build_heads

__all__ = ["ModelOutput", "MultimodalModel"]


@dataclass
class ModelOutput:
    """Task -> logits ``[B, n_labels]`` and per-sample modality weights ``[B, M]`` (or ``None``)."""

    logits: dict[str, Tensor]
    weights: Tensor | None


class MultimodalModel(nn.Module):
    """Encoders + a fusion strategy + task heads.

    Parameters
    ----------
    encoders
        Modality name -> encoder with an ``out_dim`` attribute, in mask column order.
    fusion
        Strategy name (see :data:`medmm.models.fusion.FUSIONS`).
    tasks
        Task specifications.
    embed_dim
        Fused representation size (ignored by late fusion, which outputs logits).
    """

    def __init__(
        self, encoders: Mapping[str, nn.Module], fusion: str, tasks: Sequence[TaskSpec], embed_dim: int = 32
    ) -> None:
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.tasks = list(tasks)
        dims = {m: int(getattr(e, "out_dim")) for m, e in encoders.items()}  # noqa: B009
        n_logits = sum(len(t.labels) for t in self.tasks)
        self.fusion = build_fusion(fusion, dims, n_logits if fusion == "late" else embed_dim)
        self.heads = None if self.fusion.produces_logits else build_heads(self.tasks, embed_dim)

    def embed(
        self,
        inputs: Mapping[str, Tensor],
        index: Mapping[str, Tensor],
        batch_size: int,
        features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Run each encoder on its present samples and scatter into ``[B, D_m]``."""
        out = {}
        for name, enc in self.encoders.items():
            dim = int(getattr(enc, "out_dim"))  # noqa: B009
            idx = index.get(name)
            x = inputs.get(name)
            ref = next(self.parameters())
            full = torch.zeros(batch_size, dim, device=ref.device, dtype=ref.dtype)
            if x is not None and idx is not None and idx.numel():
                extra = (features or {}).get(name)
                single = self.training and x.shape[0] == 1
                if single:  # batch-norm cannot train on one sample: use its running statistics
                    enc.eval()
                h = enc(x, extra) if extra is not None else enc(x)
                if single:
                    enc.train()
                full = full.index_put((idx,), h.to(full.dtype))
            out[name] = full
        return out

    def fused_representation(
        self,
        inputs: Mapping[str, Tensor],
        index: Mapping[str, Tensor],
        mask: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The representation the task heads read, ``[B, D]``: the fusion output.

        Late fusion has no such representation (its fusion output is the average of the unimodal heads'
        *logits*, one number per label); there it is the concatenation of the encoder outputs in
        modality order, the inputs of those heads. An absent modality's block is then zero, so late
        fusion representations are comparable only between samples with one availability pattern
        (:mod:`medmm.models.embedding_anomaly` reads a late fusion model's image encoder output instead).

        >>> import torch
        >>> from medmm.models.heads import TaskSpec
        >>> from medmm.models.encoders import ReportEncoder
        >>> tasks = [TaskSpec("dx", "multilabel", ("a",))]
        >>> m = MultimodalModel({"report": ReportEncoder(6, 8)}, "late", tasks)
        >>> mask = torch.ones(2, 1, dtype=torch.bool)
        >>> tuple(m.fused_representation({"report": torch.zeros(2, 6)}, {"report": torch.tensor([0, 1])},
        ...                              mask).shape)
        (2, 8)
        """
        emb = self.embed(inputs, index, mask.shape[0], features)
        if self.fusion.produces_logits:
            return torch.cat([emb[m] for m in self.modalities], dim=1)
        return self.fusion(emb, mask).fused

    def forward(
        self,
        inputs: Mapping[str, Tensor],
        index: Mapping[str, Tensor],
        mask: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> ModelOutput:
        """Logits per task for a batch; ``mask`` is the ``[B, M]`` availability mask."""
        emb = self.embed(inputs, index, mask.shape[0], features)
        fused = self.fusion(emb, mask)
        if self.heads is None:
            logits, start = {}, 0
            for t in self.tasks:
                logits[t.name] = fused.fused[:, start : start + len(t.labels)]
                start += len(t.labels)
        else:
            logits = {t.name: self.heads[t.name](fused.fused) for t in self.tasks}
        return ModelOutput(logits, fused.weights)

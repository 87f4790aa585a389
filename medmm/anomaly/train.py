"""Train the beat autoencoder without labels and derive its flag threshold from its training scores.

>>> import numpy as np
>>> from medmm.anomaly.features import BeatInputs
>>> rng = np.random.default_rng(0)
>>> bi = BeatInputs(rng.normal(size=(64, 2, 64)).astype("f4"), rng.normal(size=(64, 3)).astype("f4"),
...                 np.zeros(64, np.int64))
>>> m = train_beat_model(bi, seed=0, epochs=1)
>>> m.n_train_beats, m.seed
(64, 0)
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from medmm.anomaly.features import BeatInputs, WindowSpec
from medmm.anomaly.model import AnomalyModel, BeatAutoencoder, ScoreConfig
from medmm.anomaly.score import cpu_threads, pick_device, score_inputs
from medmm.anomaly.threshold import valley_threshold
from medmm.devices import deterministic_kernels

__all__ = ["DEFAULT_ENSEMBLE", "train_beat_model"]

#: Networks per model trained by the CLI (seeds seed ... seed + 4); see ``docs/anomaly.md``.
DEFAULT_ENSEMBLE = 5

log = logging.getLogger(__name__)


def train_beat_model(
    inputs: BeatInputs,
    seed: int = 0,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    latent: int = 8,
    max_beats: int = 8000,
    ensemble: int = 1,
    spec: WindowSpec | None = None,
    score_config: ScoreConfig | None = None,
    device: str | None = None,
    trained_on: str = "",
) -> AnomalyModel:
    """Fit the autoencoder on all beats (any labels are never seen) and set the threshold.

    Parameters
    ----------
    inputs
        Beat inputs of the training records (:func:`medmm.anomaly.features.beat_inputs`).
    seed
        Seeds weight init and batch order (a private ``torch.Generator``; no global seeding of numpy).
        Same seed + same device -> same weights (training runs under
        :func:`medmm.devices.deterministic_kernels`; batch order and subsets come from the CPU
        generator, so they are the same on every device).
    epochs, batch_size, lr, latent
        Adam on mean squared reconstruction error of both window channels.
    max_beats
        Train each network on a seeded random subset of at most this many beats (morphology is highly
        redundant; this bounds CPU time). The threshold still uses every training beat's score.
    ensemble
        Number of networks, trained with seeds ``seed``, ``seed + 1``, ... (each its own weight init,
        subset and batch order); the scorer averages their morphology z-scores. ``DEFAULT_ENSEMBLE``
        is what the CLI trains; 1 is one network (as before v0.4), K costs K x the training time.
    spec, score_config
        Window and scoring settings stored with the model (defaults: :class:`WindowSpec`,
        :class:`ScoreConfig`).
    device
        ``"auto"`` / ``None`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        (:func:`medmm.anomaly.score.pick_device`; a GPU the machine lacks is a ``ConfigError``).
    trained_on
        Free text recorded in the model card (e.g. the run directory's name).

    Returns
    -------
    AnomalyModel
        On CPU, in eval mode. With ``score_config.threshold_rule == "valley"`` the threshold is set by
        :func:`valley_threshold` over the training beats' own scores, else the fixed one is kept.
    """
    spec = spec or WindowSpec()
    cfg = replace(score_config) if score_config else ScoreConfig()
    if len(inputs) < 2:
        raise ValueError("need at least 2 beats to train")
    if ensemble < 1:
        raise ValueError(f"ensemble must be >= 1, got {ensemble}")
    dev = pick_device(device)
    all_waves = torch.from_numpy(np.ascontiguousarray(inputs.waves))
    nets, losses = [], []
    for member in range(int(ensemble)):
        net_seed = int(seed) + member
        gen = torch.Generator().manual_seed(net_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(net_seed)
            net = BeatAutoencoder(n_points=inputs.waves.shape[2], latent=latent)
        net.to(dev).train()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        waves = all_waves
        if waves.shape[0] > max_beats:
            pick = torch.randperm(waves.shape[0], generator=gen)[:max_beats].sort().values
            waves = waves[pick]
        with cpu_threads(1 if dev.type == "cpu" else None), deterministic_kernels(True):
            losses.append(_fit(net, opt, waves, gen, dev, epochs, batch_size))
        nets.append(net.cpu().eval())
    last = float(np.mean(losses))
    model = AnomalyModel(
        net=nets[0],
        members=nets[1:],
        spec=spec,
        score=cfg,
        latent=latent,
        seed=int(seed),
        n_train_beats=len(inputs),
        n_train_records=len(np.unique(inputs.group)),
        train_loss=last,
        trained_on=trained_on,
    )
    if cfg.threshold_rule == "valley":
        cfg.threshold = valley_threshold(score_inputs(model, inputs, device=device)["score"])
    elif cfg.threshold_rule != "fixed":
        raise ValueError(f"threshold_rule must be 'fixed' or 'valley', got {cfg.threshold_rule!r}")
    return model


def _fit(
    net: BeatAutoencoder,
    opt: torch.optim.Optimizer,
    waves: torch.Tensor,
    gen: torch.Generator,
    dev: torch.device,
    epochs: int,
    batch_size: int,
) -> float:
    n = waves.shape[0]
    waves = waves.to(dev)  # the training beats fit on any GPU (8000 x 2 x 64 float32 = 4 MB): copy once
    last = 0.0
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(dev)  # CPU generator: same order on every device
        total = torch.zeros((), dtype=torch.float64, device=dev)
        for start in range(0, n, batch_size):
            batch = waves[perm[start : start + batch_size]]
            recon, _ = net(batch)
            loss = torch.mean((recon - batch) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().double() * batch.shape[0]  # summed on the device: no sync per step
        last = float(total) / n
        log.info("epoch %d/%d loss %.5f", epoch + 1, epochs, last)
    return last

"""The beat autoencoder (torch) and its safe checkpoint format (weights + ``model.json`` with a hash).

The network is a small 1D convolutional autoencoder over the two-channel beat window of
:mod:`medmm.anomaly.features` (normalised beat, residual to the record's median beat). Its 8-dimensional
bottleneck is the *morphology embedding*: beats of the same shape land close together whatever the
patient, and the scorer measures how far each beat's embedding lies from its own record's dominant
cluster (:mod:`medmm.anomaly.score`).

>>> import torch
>>> net = BeatAutoencoder(n_points=64, latent=8)
>>> recon, z = net(torch.zeros(4, 2, 64))
>>> tuple(recon.shape), tuple(z.shape)
((4, 2, 64), (4, 8))
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medmm.anomaly.features import WindowSpec
from medmm.anomaly.records import ModelCard
from medmm.errors import InputError
from medmm.tables import atomic_write_bytes, atomic_write_json

__all__ = [
    "MODEL_KIND",
    "AnomalyModel",
    "BeatAutoencoder",
    "ModelFileError",
    "ScoreConfig",
    "load_model",
    "save_model",
]

MODEL_KIND = "beat-autoencoder-v1"
#: Card versions :func:`load_model` reads: 1 = one network (v0.1-v0.3), 2 = an ensemble (v0.4).
CARD_VERSIONS = (1, 2)
#: Robust-SD floor of log RR prematurity: a beat 20 % early (RR < 0.8 x the local RR) = 4 robust SD.
PREMATURITY_FLOOR = math.log(1.0 / 0.8) / 4.0
WEIGHTS_FILE = "weights.pt"
CARD_FILE = "model.json"


class ModelFileError(InputError):
    """A model directory is missing, incomplete, tampered with or of an unknown kind."""


class BeatAutoencoder(nn.Module):
    """Conv1d encoder (3 blocks, /8 pooling) -> ``latent`` units -> MLP decoder back to the window."""

    def __init__(self, n_points: int = 64, latent: int = 8, width: int = 32) -> None:
        super().__init__()
        if n_points % 8:
            raise ValueError(f"n_points must be a multiple of 8, got {n_points}")
        self.n_points = n_points
        self.encoder = nn.Sequential(
            nn.Conv1d(2, width // 2, 7, padding=3),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(width // 2, width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(width, width, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Flatten(),
            nn.Linear(width * (n_points // 8), 64),
            nn.ReLU(),
            nn.Linear(64, latent),
        )
        self.decoder = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 2 * n_points))

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (reconstruction (n, 2, n_points), embedding (n, latent))."""
        z = self.encoder(waves)
        return self.decoder(z).view(-1, 2, self.n_points), z


@dataclass
class ScoreConfig:
    """How embeddings and RR context become a score (see :mod:`medmm.anomaly.score`).

    ``core_fraction``: share of a record's beats (closest to its median embedding) used to estimate the
    dominant cluster's covariance. ``mad_floor_*``: smallest robust spread allowed for the
    log-Mahalanobis and the log-RR prematurity, so near-constant records do not blow up z-scores.
    ``morph_transform``: ``"sqrt"`` (the Mahalanobis distance, default) or ``"log"`` (of its square,
    the v0.1 default) before the z-score.
    ``saturation``: cap of each aspect's contribution to the score (:func:`medmm.anomaly.gates.saturate`).
    ``threshold``/``threshold_rule``: ``"fixed"`` keeps ``threshold`` (default 12 = three aspects x 4
    robust SD); ``"valley"`` re-derives it from the training scores (:mod:`medmm.anomaly.threshold`).
    ``noise_ratio``: beats whose local high-frequency noise exceeds this multiple of the record's median
    have their score scaled by ``noise_ratio / noise`` (a noise burst is not evidence of ectopy); ``0``
    switches the quality weighting off. ``min_qrs_ratio``: beats whose QRS amplitude is below this
    share of the record's median score 0 (flat lead, nothing to judge). ``gap_rr``: where an adjacent RR
    interval exceeds this multiple of the local RR - longer than any compensatory pause, i.e. a missed
    beat or signal drop-out - the timing aspects are void for that beat (``0`` switches this off).
    ``qrs_gate_z``: robust SD of QRS difference from which prematurity/pause count fully
    (:func:`medmm.anomaly.gates.qrs_gate`). ``neighbours``: if > 0, a beat's timing evidence is at
    least the median of its ``neighbours`` nearest look-alikes in morphology, provided they form a
    tight group (``neighbour_tightness``; :func:`medmm.anomaly.score.neighbour_timing`); ``0``
    switches this off (as in v0.2).
    ``max_saturated``: beats with more than this share of clipped samples around them score 0.
    ``noise_z``: if > 0, the noise threshold of each record is label-free and record-relative: a beat
    is discounted when its noise is a ``noise_z`` robust-SD outlier of the record's log noise
    (``noise_ratio`` is then not used); ``0`` keeps the fixed ``noise_ratio`` (v0.2/v0.3).
    ``qrs_floor`` (v0.5): the QRS residual's robust SD is floored at this fraction of the QRS amplitude
    (:func:`medmm.anomaly.gates.qrs_gate`); ``0`` = the v0.4 log-scale z. ``p_absent`` (v0.5): a
    missing P wave (:func:`medmm.anomaly.gates.p_absent_gate`) opens the timing gate like an abnormal
    QRS does. ``kurtosis_sqi`` (v0.6): a beat's quality weight is at most the square root of its
    kurtosis quality index relative to the record (:mod:`medmm.anomaly.sqi`; Li, Mark and Clifford
    2008) - the share of its 5-s window's variance that is the record's usual ECG - so a beat in a
    noise burst needs proportionally stronger evidence; fixed before it was measured on any label.
    ``dominant_ref`` (v0.10, :mod:`medmm.anomaly.dominant`): in a record with two beat shapes (the
    smaller >= 20 % of the beats, 4 robust SD apart) of which one is premature with a following pause
    (median RR before it < 0.9 x the other's, median RR after it > RR before it / 0.9), every reference
    of the score is taken from the other, normal beats; any other record scores exactly as v0.6.

    Defaults (v0.5): ``mad_floor_rr`` 0.05, ``noise_ratio`` 1.5, ``neighbours`` 5 with
    ``neighbour_tightness`` 1.0 - *chosen with the labels* of the 9 MIT-BIH records (v0.3/v0.4) -,
    ``qrs_gate_z`` 1.0 (the unit; v0.4: 0.5, chosen with 108's labels, no longer needed with the P-wave
    criterion), ``qrs_floor`` 0.05 and ``p_absent`` on (v0.5, designed while looking at the errors in
    100 and 108). The honest estimates are the nested leave-one-record-out and the a-priori row in
    ``docs/anomaly.md``. :meth:`a_priori` gives the alternative fixed before looking at any result.
    """

    core_fraction: float = 0.8
    mad_floor_morph: float = 0.05
    mad_floor_rr: float = 0.05
    morph_transform: str = "sqrt"
    saturation: float = 8.0
    threshold: float = 12.0
    threshold_rule: str = "fixed"
    noise_ratio: float = 1.5
    min_qrs_ratio: float = 0.3
    gap_rr: float = 1.8
    qrs_gate_z: float = 1.0
    neighbours: int = 5
    neighbour_tightness: float = 1.0
    max_saturated: float = 0.1
    noise_z: float = 0.0
    qrs_floor: float = 0.05
    p_absent: bool = True
    kurtosis_sqi: bool = True
    dominant_ref: bool = True

    @classmethod
    def a_priori(cls) -> ScoreConfig:
        """The constants fixed from conventions before any result was seen (v0.4 proposal).

        ``mad_floor_rr`` = ln(1 / 0.8) / 4 (a beat 20 % early - the usual prematurity criterion, above
        sinus arrhythmia's ~10 % - is 4 robust SD premature even in a perfectly regular record),
        ``qrs_gate_z`` 1.0 (one robust SD, the unit), ``noise_z`` 4.0 (a beat's noise must be a 4-SD
        outlier of its own record, the convention of the flag threshold), ``neighbour_tightness``
        1.0 (the beat is closer to its look-alikes than to the centre of the normal beats).

        >>> round(ScoreConfig.a_priori().mad_floor_rr, 4)
        0.0558
        """
        return cls(mad_floor_rr=PREMATURITY_FLOOR, qrs_gate_z=1.0, noise_z=4.0, neighbour_tightness=1.0)


@dataclass
class AnomalyModel:
    """A trained beat anomaly model: network(s), window spec, scoring config and training facts.

    ``net`` is the network trained with ``seed``; ``members`` are the further networks of an ensemble,
    trained with ``seed + 1``, ``seed + 2``, ... on the same beats (:attr:`nets` lists all of them).
    The scorer averages the members' per-record morphology z-scores (:mod:`medmm.anomaly.score`).
    """

    net: BeatAutoencoder
    spec: WindowSpec = field(default_factory=WindowSpec)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    latent: int = 8
    seed: int = 0
    n_train_beats: int = 0
    n_train_records: int = 0
    train_loss: float = 0.0
    trained_on: str = ""
    members: list[BeatAutoencoder] = field(default_factory=list)

    @property
    def nets(self) -> list[BeatAutoencoder]:
        """Every network of the ensemble, ``net`` first (seeds ``seed``, ``seed + 1``, ...)."""
        return [self.net, *self.members]

    def config(self) -> dict[str, Any]:
        """JSON-able hyper-parameters needed to rebuild the network and score like it was trained."""
        spec = asdict(self.spec)
        spec["band_hz"] = list(spec["band_hz"])
        spec["baseline_s"] = list(spec["baseline_s"])
        return {
            "latent": self.latent,
            "n_points": self.spec.n_points,
            "ensemble": len(self.nets),
            "spec": spec,
            "score": asdict(self.score),
            "train_loss": self.train_loss,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(model: AnomalyModel, out_dir: Path, device: str = "cpu") -> Path:
    """Write ``weights.pt`` (a plain dict of tensors) and ``model.json`` (card with the weights' SHA-256).

    One network: its state dict (card version 1, as before v0.4). An ensemble: every member's state
    dict under the key prefix ``"<i>."`` (card version 2, ``config["ensemble"]`` = number of members).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> m = AnomalyModel(net=BeatAutoencoder())
    >>> save_model(m, d).name
    'model.json'
    >>> load_model(d).latent
    8
    """
    out_dir = Path(out_dir)
    buf = io.BytesIO()
    nets = model.nets
    if len(nets) == 1:
        state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    else:
        state = {
            f"{i}.{k}": v.detach().cpu() for i, net in enumerate(nets) for k, v in net.state_dict().items()
        }
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write_bytes(out_dir / WEIGHTS_FILE, data)
    cfg = model.config()
    card = ModelCard(
        kind=MODEL_KIND,
        version=1 if len(nets) == 1 else 2,
        seed=model.seed,
        n_train_beats=model.n_train_beats,
        n_train_records=model.n_train_records,
        threshold=model.score.threshold,
        threshold_rule=model.score.threshold_rule,
        config=cfg,
        weights_file=WEIGHTS_FILE,
        weights_sha256=_sha256(data),
        trained_on=model.trained_on,
        device=device,
    )
    return atomic_write_json(out_dir / CARD_FILE, card.model_dump(mode="json"))


def load_model(model_dir: Path, map_location: str = "cpu") -> AnomalyModel:
    """Load a model saved by :func:`save_model`, checking the hash; weights load with ``weights_only``.

    Raises :class:`ModelFileError` naming the folder, the problem and the fix.
    """
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    if not card_path.is_file():
        raise ModelFileError(
            str(model_dir), f"no {CARD_FILE}", "pass the --out folder of `medmm anomaly train`"
        )
    try:
        card = ModelCard.model_validate_json(card_path.read_text())
    except ValueError as exc:
        raise ModelFileError(str(card_path), f"unreadable model card ({exc})", "re-train the model") from exc
    if card.kind != MODEL_KIND:
        raise ModelFileError(str(card_path), f"unknown model kind {card.kind!r}", f"use a {MODEL_KIND} model")
    if card.version not in CARD_VERSIONS:
        raise ModelFileError(
            str(card_path),
            f"model card version {card.version} (this medmm reads {', '.join(map(str, CARD_VERSIONS))})",
            "re-train the model with this medmm version",
        )
    weights = model_dir / card.weights_file
    if not weights.is_file():
        raise ModelFileError(str(weights), "weights file missing", "copy the whole model folder")
    data = weights.read_bytes()
    if _sha256(data) != card.weights_sha256:
        raise ModelFileError(
            str(weights), "SHA-256 does not match model.json", "re-train or re-copy the model"
        )
    cfg = dict(card.config)
    spec_d = dict(cfg["spec"])
    spec_d["band_hz"] = tuple(spec_d["band_hz"])
    spec_d["baseline_s"] = tuple(spec_d.get("baseline_s", ()))  # before v0.3: no baseline removal
    # keys missing from older cards take the value that model was trained and scored with
    old: dict[str, Any] = {"noise_ratio": 2.0, "gap_rr": 1.8, "qrs_gate_z": 1.0}  # pre-v0.2: v0.2's
    old |= {"neighbours": 0, "max_saturated": 0.0, "noise_z": 0.0}  # pre-v0.3 / pre-v0.4
    old |= {"qrs_floor": 0.0, "p_absent": False}  # pre-v0.5
    old |= {"kurtosis_sqi": False}  # pre-v0.6
    old |= {"dominant_ref": False}  # pre-v0.10
    score_d = old | dict(cfg["score"])
    n_nets = int(cfg.get("ensemble", 1))
    state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    nets = []
    for i in range(n_nets):
        net = BeatAutoencoder(n_points=int(cfg["n_points"]), latent=int(cfg["latent"]))
        part = (
            state
            if n_nets == 1
            else {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{i}.")}
        )
        try:
            net.load_state_dict(part)
        except RuntimeError as exc:
            raise ModelFileError(
                str(weights), f"weights do not fit network {i} of {n_nets} ({exc})", "re-train the model"
            ) from exc
        nets.append(net.eval())
    return AnomalyModel(
        net=nets[0],
        members=nets[1:],
        spec=WindowSpec(**spec_d),
        score=ScoreConfig(**score_d),
        latent=int(cfg["latent"]),
        seed=card.seed,
        n_train_beats=card.n_train_beats,
        n_train_records=card.n_train_records,
        train_loss=float(cfg.get("train_loss", 0.0)),
        trained_on=card.trained_on,
    )

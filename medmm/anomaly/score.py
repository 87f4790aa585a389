"""Score beats with a trained :class:`~medmm.anomaly.model.AnomalyModel`.

For each record (one ``group`` of :class:`~medmm.anomaly.features.BeatInputs`):

1. **morphology** - the autoencoder embeds every beat; the record's dominant cluster is estimated from
   the ``core_fraction`` of beats nearest the median embedding (robust mean and covariance); each beat's
   Mahalanobis distance to it (``morph_transform``: ``"sqrt"`` = the distance, default, or ``"log"``
   of its square) becomes a robust z within the record (``morphology_z``);
2. **rhythm** - prematurity ``-log(rr_prev / local RR)``, as a robust z within the record
   (``rhythm_z``; robust SD floored at ``mad_floor_rr``);
3. **pause** - the following pause ``log(rr_next / local RR)``, as a robust z (``pause_z``); rhythm
   and pause are void (0) next to an RR interval longer than ``gap_rr`` x the local RR (a missed beat
   or drop-out, not a compensatory pause);
4. timing needs a ventricular sign: rhythm and pause are multiplied by the larger of
   ``clip(qrs_z / qrs_gate_z, 0, 1)`` (``qrs_z``: robust z of the QRS-only residual,
   :func:`medmm.anomaly.features.qrs_residual`, its robust SD floored at ``qrs_floor`` of the QRS
   amplitude; :func:`medmm.anomaly.gates.qrs_gate`) and ``clip(p_absent_z / qrs_gate_z, 0, 1)``
   (``p_absent_z``: how much smaller than the record's the P-wave stretch is,
   :func:`medmm.anomaly.gates.p_absent_gate`) - an abnormal QRS *or* no P wave;
5. look-alike timing: a beat's timing evidence is at least the median of its ``neighbours`` nearest
   look-alikes' when they form a tight group (:func:`neighbour_timing`) - a late-coupled PVC is
   recognised by the other PVCs of its focus;
6. ``score = quality x (sat(morphology_z) + timing)`` where ``quality`` =
   ``min(1, limit / local noise)``, ``limit`` the record's 4-robust-SD noise outlier level
   (:func:`medmm.anomaly.gates.noise_limit`; 0 for a flat or clipped lead, see
   :func:`medmm.anomaly.features.beat_quality`), with ``kurtosis_sqi`` (v0.6) at most
   ``sqrt(kurtosis_rel)`` (:mod:`medmm.anomaly.sqi`), and ``flag = score > threshold``.

An ensemble (several networks trained with consecutive seeds) averages the members' morphology
z-scores, which removes most of the seed-to-seed variation of one autoencoder without any label.

All parts are "unusual relative to this record's own beats", which is what an ectopic beat is;
nothing here sees a label.

>>> import numpy as np
>>> from medmm.anomaly.model import AnomalyModel, BeatAutoencoder
>>> from medmm.anomaly.features import BeatInputs
>>> rng = np.random.default_rng(0)
>>> bi = BeatInputs(rng.normal(size=(50, 2, 64)).astype("f4"), rng.normal(size=(50, 3)).astype("f4"),
...                 np.zeros(50, np.int64))
>>> out = score_inputs(AnomalyModel(net=BeatAutoencoder()), bi)
>>> sorted(out)[:5]
['flag', 'morphology_z', 'normal_ref', 'pause_z', 'rhythm_z']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from medmm.anomaly.dominant import dominant_reference, nn_reference, reference_z, window_qrs_residual
from medmm.anomaly.features import BeatInputs, WindowSpec
from medmm.anomaly.gates import noise_limit, p_absent_gate, qrs_gate, quality_weight, saturate
from medmm.anomaly.model import AnomalyModel, BeatAutoencoder, ScoreConfig
from medmm.anomaly.threshold import robust_z

__all__ = [
    "ANOMALY_COLUMNS",
    "anomaly_frame",
    "cpu_threads",
    "embed",
    "mahalanobis_to_core",
    "neighbour_timing",
    "noise_limit",
    "normal_reference",
    "p_absent_gate",
    "pick_device",
    "qrs_gate",
    "quality_weight",
    "score_beats",
    "score_embeddings",
    "score_inputs",
    "whiten_to_core",
]

#: Columns of ``anomalies.parquet`` in order (see :class:`medmm.anomaly.records.AnomalyRow`).
ANOMALY_COLUMNS = (
    "record",
    "patient_id",
    "channel",
    "sample",
    "time_s",
    "score",
    "flag",
    "morphology_z",
    "rhythm_z",
    "pause_z",
    "quality",
)


def pick_device(device: str | None = None) -> torch.device:
    """The ``--device`` of the anomaly commands as a :class:`torch.device`: ``auto`` / empty / ``None``
    (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    :func:`medmm.devices.resolve_device` with the option's name as the source, so ``medmm anomaly`` and
    ``medmm train/evaluate/predict`` accept the same names and fail the same way: an unknown name, or a
    GPU the machine does not have, is a :class:`~medmm.errors.ConfigError` that says what to use instead.

    >>> pick_device("cpu").type
    'cpu'
    """
    from medmm.devices import resolve_device

    return resolve_device(device, source="--device")


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads, restoring the previous count afterwards.

    The network is tiny: one thread is fastest and avoids thread oversubscription on shared machines
    (measured 12x faster per training step than 2 threads on a loaded 2-core host). ``None`` keeps
    torch's setting.

    >>> with cpu_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def embed(
    model: AnomalyModel,
    waves: NDArray[np.float32],
    batch_size: int = 256,
    device: str | None = None,
    net: BeatAutoencoder | None = None,
) -> NDArray[np.float64]:
    """Autoencoder embeddings (n, latent) of beat windows, computed in batches.

    ``net`` picks one network of an ensemble (default: ``model.net``, the first). ``batch_size=1``
    scores beat by beat (used by the benchmark as the unbatched baseline).
    """
    dev = pick_device(device)
    net = net or model.net
    home = next(net.parameters()).device  # the model stays where it was (the CPU after loading)
    net.to(dev).eval()
    out = np.zeros((waves.shape[0], model.latent), dtype=np.float64)
    try:
        with cpu_threads(1 if dev.type == "cpu" else None):
            for start in range(0, waves.shape[0], max(1, batch_size)):
                chunk = torch.from_numpy(np.ascontiguousarray(waves[start : start + batch_size]))
                z = net(chunk.to(dev))[1]
                out[start : start + chunk.shape[0]] = z.double().cpu().numpy()
    finally:
        net.to(home)
    return out


def whiten_to_core(
    z: NDArray[np.floating], core_fraction: float = 0.8, reference: NDArray[np.bool_] | None = None
) -> NDArray[np.float64]:
    """Coordinates in which the record's dominant cluster has zero mean and identity covariance.

    The cluster is the ``core_fraction`` of rows closest (standardised Euclidean) to the coordinate-wise
    median; its mean and covariance (ridge 1e-6 x trace) define the metric. Euclidean distances in the
    returned coordinates are Mahalanobis distances of the dominant cluster's metric. ``reference``
    (v0.10, :mod:`medmm.anomaly.dominant`): median, spread and core are taken from these rows only.

    >>> import numpy as np
    >>> w = whiten_to_core(np.random.default_rng(1).normal(size=(500, 2)) * [1.0, 10.0])
    >>> np.round(np.std(w, axis=0), 0).tolist()
    [1.0, 1.0]
    """
    z = np.asarray(z, dtype=np.float64)
    base = z if reference is None else z[np.asarray(reference, dtype=bool)]
    n, d = base.shape
    if n < d + 2:
        return np.zeros_like(z)
    med = np.median(base, axis=0)
    spread = 1.4826 * np.median(np.abs(base - med), axis=0) + 1e-9
    dist0 = (((base - med) / spread) ** 2).sum(axis=1)
    keep = dist0 <= np.quantile(dist0, core_fraction)
    core = base[keep]
    mu = core.mean(axis=0)
    cov = np.cov(core, rowvar=False)
    cov += np.eye(d) * 1e-6 * max(float(np.trace(cov)), 1e-12)
    chol = np.linalg.cholesky(cov)
    return np.asarray(np.linalg.solve(chol, (z - mu).T).T)


def mahalanobis_to_core(z: NDArray[np.floating], core_fraction: float = 0.8) -> NDArray[np.float64]:
    """Squared Mahalanobis distance of each row to the record's dominant cluster (:func:`whiten_to_core`).

    >>> import numpy as np
    >>> z = np.random.default_rng(1).normal(size=(200, 3)); z[0] += 20
    >>> int(np.argmax(mahalanobis_to_core(z)))
    0
    """
    return np.asarray((whiten_to_core(z, core_fraction) ** 2).sum(axis=1))


def neighbour_timing(
    white: NDArray[np.floating], timing: NDArray[np.floating], k: int, tightness: float = 0.3
) -> NDArray:
    """Median timing evidence of each beat's ``k`` nearest neighbours in morphology (self excluded).

    Ectopic beats from one focus share a shape, and most of them come early: a beat of that shape that
    happens to come late (a late-coupled PVC) inherits the timing evidence of its look-alikes, while a
    normal-shaped beat's neighbours are normal beats (median 0). Only beats in a *tight* group inherit:
    the ``k``-th neighbour must lie within ``tightness`` x the beat's own distance to the dominant
    cluster (``white`` from :func:`whiten_to_core`), so scattered one-off shapes (artefact) do not
    borrow timing from each other. ``k <= 0`` or too few beats give 0.

    >>> import numpy as np
    >>> w = np.r_[np.zeros((50, 2)), np.full((6, 2), 9.0)] + np.random.default_rng(0).normal(0, .1, (56, 2))
    >>> t = np.r_[np.zeros(50), 10.0, 10.0, 10.0, 10.0, 10.0, 0.0]
    >>> neighbour_timing(w, t, 5)[[0, 55]].tolist()
    [0.0, 10.0]
    """
    from scipy.spatial import cKDTree

    white = np.asarray(white, dtype=np.float64)
    n = white.shape[0]
    if k <= 0 or n <= k:
        return np.zeros(n)
    dist, nn = cKDTree(white).query(white, k=k + 1)
    lent = np.median(np.asarray(timing, dtype=np.float64)[nn[:, 1:]], axis=1)
    tight = dist[:, k] < tightness * np.sqrt((white**2).sum(axis=1))
    return np.asarray(np.where(tight, lent, 0.0))


def score_inputs(
    model: AnomalyModel, inputs: BeatInputs, batch_size: int = 256, device: str | None = None
) -> dict[str, NDArray]:
    """Per-beat ``score``, ``flag``, the three per-record robust z's and the quality ``weight``.

    Embeds the beats with every network of the model (:attr:`AnomalyModel.nets`) and scores them with
    :func:`score_embeddings` under ``model.score``.
    """
    embeddings = [
        embed(model, inputs.waves, batch_size=batch_size, device=device, net=net) for net in model.nets
    ]
    return score_embeddings(embeddings, inputs, model.score, spec=model.spec)


def score_embeddings(
    embeddings: list[NDArray[np.floating]],
    inputs: BeatInputs,
    cfg: ScoreConfig,
    spec: WindowSpec | None = None,
) -> dict[str, NDArray]:
    """Score beats from the embeddings of one or more networks (an ensemble) under ``cfg``.

    ``score = weight x (sat(morphology_z) + timing)`` with ``sat`` =
    :func:`medmm.anomaly.gates.saturate` at ``cfg.saturation`` (no single aspect can flag a beat on its
    own), ``weight`` = :func:`medmm.anomaly.gates.quality_weight` and ``timing`` = the larger of the
    beat's own ``timing_weight x (sat(rhythm_z) + sat(pause_z))`` and its look-alikes'
    (:func:`neighbour_timing`); timing aspects are 0 next to an RR gap (``gap_rr``) and scaled by the
    larger of :func:`medmm.anomaly.gates.qrs_gate` and, with ``cfg.p_absent``,
    :func:`medmm.anomaly.gates.p_absent_gate` (a premature beat needs an abnormal QRS or a missing P
    wave to count as a PVC). With several networks, ``morphology_z`` is the mean of the
    members' per-record z-scores, and look-alikes are searched in the members' whitened embeddings
    side by side (divided by sqrt(members), so distances are root-mean-square over members).
    With ``cfg.dominant_ref`` (v0.10) a record with a premature ectopic beat population
    (:func:`medmm.anomaly.dominant.dominant_reference`) takes every reference from its normal beats
    (``spec``: the window grid of ``inputs.waves``, for the normal-beat QRS template); other records
    score exactly as without it. ``two_populations`` marks the beats of such records and
    ``normal_ref`` the normal beats their references came from (both all False elsewhere).

    >>> import numpy as np
    >>> from medmm.anomaly.model import ScoreConfig
    >>> rng = np.random.default_rng(0)
    >>> bi = BeatInputs(np.zeros((40, 2, 64), "f4"), np.zeros((40, 3), "f4"), np.zeros(40, np.int64))
    >>> embs = [rng.normal(size=(40, 8)) for _ in range(3)]
    >>> embs[0][7] += 50; embs[1][7] += 50; embs[2][7] += 50
    >>> int(np.argmax(score_embeddings(embs, bi, ScoreConfig())["morphology_z"]))
    7
    """
    n = len(inputs)
    if not embeddings:
        raise ValueError("need the embeddings of at least one network")
    cap = cfg.saturation
    morph, rhythm, pause = np.zeros(n), np.zeros(n), np.zeros(n)
    timing_w, timing = np.ones(n), np.zeros(n)
    two_pop, normal = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    k = len(embeddings)
    for g in np.unique(inputs.group) if n else []:
        idx = np.flatnonzero(inputs.group == g)
        ctx = inputs.context[idx].astype(np.float64)
        ref = normal_reference(embeddings, ctx, idx) if cfg.dominant_ref else None
        if ref is not None:
            two_pop[idx], normal[idx] = True, ref
        whites = []
        for z in embeddings:
            white = whiten_to_core(np.asarray(z)[idx], cfg.core_fraction, reference=ref)
            d2 = (white**2).sum(axis=1)
            dist = np.log(d2 + 1e-3) if cfg.morph_transform == "log" else np.sqrt(d2)
            if ref is None:
                morph[idx] += robust_z(dist, cfg.mad_floor_morph) / k
            else:
                morph[idx] += reference_z(dist, ref, cfg.mad_floor_morph) / k
            whites.append(white)
        qrs = np.asarray(inputs.qrs)[idx]
        if ref is None:
            rhythm[idx] = robust_z(-ctx[:, 0], cfg.mad_floor_rr)
            pause[idx] = robust_z(ctx[:, 1], cfg.mad_floor_rr)
        else:  # coupling interval and pause against normal-to-normal intervals, QRS against normal QRS
            rhythm[idx] = reference_z(-ctx[:, 0], nn_reference(ref, before=False), cfg.mad_floor_rr)
            pause[idx] = reference_z(ctx[:, 1], nn_reference(ref, before=True), cfg.mad_floor_rr)
            if np.isfinite(qrs).any():
                sp = spec or WindowSpec()
                qrs = window_qrs_residual(inputs.waves[idx, 0], ref, sp.pre_s, sp.post_s)
        if cfg.gap_rr > 0:
            gap = np.exp(ctx[:, :2]).max(axis=1) > cfg.gap_rr
            rhythm[idx[gap]] = 0.0
            pause[idx[gap]] = 0.0
        timing_w[idx] = qrs_gate(qrs, cfg.qrs_gate_z, linear_floor=cfg.qrs_floor, reference=ref)
        if cfg.p_absent:
            p_gate = p_absent_gate(np.asarray(inputs.p_wave)[idx], cfg.qrs_gate_z, reference=ref)
            timing_w[idx] = np.maximum(timing_w[idx], p_gate)
        own = timing_w[idx] * (saturate(rhythm[idx], cap) + saturate(pause[idx], cap))
        white_all = np.hstack(whites) / np.sqrt(k)
        timing[idx] = np.maximum(
            own, neighbour_timing(white_all, own, cfg.neighbours, cfg.neighbour_tightness)
        )
    weight = quality_weight(
        np.asarray(inputs.quality),
        cfg.noise_ratio,
        cfg.min_qrs_ratio,
        cfg.max_saturated,
        noise_z=cfg.noise_z,
        group=inputs.group,
        kurtosis_sqi=cfg.kurtosis_sqi,
    )
    score = weight * (saturate(morph, cap) + timing)
    return {
        "score": score,
        "flag": score > cfg.threshold,
        "weight": weight,
        "timing_weight": timing_w,
        "timing": timing,
        "morphology_z": morph,
        "rhythm_z": rhythm,
        "pause_z": pause,
        "two_populations": two_pop,
        "normal_ref": normal,
    }


def normal_reference(
    embeddings: list[NDArray[np.floating]], ctx: NDArray[np.float64], idx: NDArray[np.integer]
) -> NDArray[np.bool_] | None:
    """v0.10: the normal beats of one record (rows ``idx``) with a premature ectopic population
    (:func:`medmm.anomaly.dominant.dominant_reference`), clustered in the members' embeddings side by
    side, each centred and divided by its total spread (one scalar per member: the embedding's own
    geometry; whitening by a core that mixes two populations would shrink the very direction that
    separates them); ``None`` otherwise.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> normal_reference([rng.normal(size=(100, 8))], np.zeros((100, 3)), np.arange(100)) is None
    True
    """
    scaled = []
    for z in embeddings:
        e = np.asarray(z, dtype=np.float64)[idx]
        e = e - np.median(e, axis=0)
        scaled.append(e / max(float(np.sqrt(e.var(axis=0).sum())), 1e-12))
    return dominant_reference(np.hstack(scaled), ctx)


def score_beats(
    model: AnomalyModel,
    inputs: BeatInputs,
    keys: pd.DataFrame,
    batch_size: int = 256,
    device: str | None = None,
) -> pd.DataFrame:
    """Score beats and return the ``anomalies`` table (keys + score, flag, morphology_z, rhythm_z).

    ``keys`` has one row per beat in the order of ``inputs`` with ``record``, ``channel``, ``sample``
    and optionally ``patient_id`` and ``time_s`` (e.g. from :func:`medmm.anomaly.runs.run_inputs`).

    >>> import numpy as np, pandas as pd
    >>> from medmm.anomaly.model import AnomalyModel, BeatAutoencoder
    >>> bi = BeatInputs(np.zeros((30, 2, 64), "f4"), np.zeros((30, 3), "f4"), np.zeros(30, np.int64))
    >>> keys = pd.DataFrame({"record": "a", "channel": "II", "sample": np.arange(30) * 300})
    >>> list(score_beats(AnomalyModel(net=BeatAutoencoder()), bi, keys).columns)[:5]
    ['record', 'patient_id', 'channel', 'sample', 'time_s']
    """
    if len(keys) != len(inputs):
        raise ValueError(f"{len(keys)} key rows for {len(inputs)} beats")
    return anomaly_frame(score_inputs(model, inputs, batch_size=batch_size, device=device), keys)


def anomaly_frame(out: dict[str, NDArray], keys: pd.DataFrame) -> pd.DataFrame:
    """The ``anomalies`` table from :func:`score_inputs`' output and the beats' ``keys`` (same order).

    >>> import numpy as np, pandas as pd
    >>> out = {c: np.zeros(2) for c in ("score", "flag", "morphology_z", "rhythm_z", "pause_z", "weight")}
    >>> anomaly_frame(out, pd.DataFrame({"record": "a", "channel": "II", "sample": [1, 2]})).shape
    (2, 11)
    """
    frame = pd.DataFrame(
        {
            "record": keys["record"].astype(str).to_numpy(),
            "patient_id": keys["patient_id"].astype(str).to_numpy() if "patient_id" in keys else "",
            "channel": keys["channel"].astype(str).to_numpy(),
            "sample": keys["sample"].to_numpy(dtype=np.int64),
            "time_s": keys["time_s"].to_numpy(dtype=np.float64) if "time_s" in keys else np.nan,
            "score": out["score"].astype(np.float64),
            "flag": out["flag"].astype(bool),
            "morphology_z": out["morphology_z"].astype(np.float64),
            "rhythm_z": out["rhythm_z"].astype(np.float64),
            "pause_z": out["pause_z"].astype(np.float64),
            "quality": out["weight"].astype(np.float64),
        }
    )
    return frame[list(ANOMALY_COLUMNS)]

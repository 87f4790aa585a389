"""Label-free imaging anomaly score from the fused embedding: a Gaussian density (Ledoit-Wolf shrinkage
covariance) of the training records' image representations, scored by Mahalanobis distance, with a
conformal threshold at a stated false-alarm rate.

What is scored. For every record *with an image*, the representation the task heads read (the fusion
output, :meth:`~medmm.models.model.MultimodalModel.fused_representation`) computed with the image as the
only present modality. So the score depends on the image alone, whatever else the record has (an
anomalous report or ECG does not move it), and one density covers every availability pattern; records
without an image get no score (NaN). Late fusion has no fused representation (its fusion output is the
averaged unimodal logits), so there it is the image encoder's output, the input of the image's head.

Density. One Gaussian: mean and the Ledoit-Wolf (2004) shrinkage covariance of the training split's
representations (no label is read), the label-free form of the feature-space Mahalanobis detector of
Lee et al. (2018, which fits class-conditional means with a tied covariance). Shrinkage keeps the
precision matrix finite when records are few compared with the representation size. Score = the
Mahalanobis distance (higher = more anomalous); with ``image_input.slice: all`` each slice is a sample
and a record's score combines its slice distances by the checkpoint's ``slice_aggregation``. The unit of
the fit is the record (:func:`fit_on_split`; the calibration's is the distinct image): the score finds
what is *rare among the training records' images*, so an abnormality as common there as the normal
finding is no anomaly.

Threshold (split conformal, Vovk et al. 2005; Angelopoulos & Bates 2021). The validation split's images
(held out from the density fit), one score per distinct image, none of an image or a patient also in the
training split (:func:`calibration_records`), are sorted, ``s_(1) <= ... <= s_(n)``, and the threshold is
``s_(k)`` with ``k = ceil((n + 1) (1 - rate))``; a record is flagged when its score is above it. For a
new image exchangeable with the calibration images (another patient of the same population, site and
scanner), ``P(flag) <= rate`` on average over calibration sets (and ``>= rate - 1 / (n + 1)`` for
continuous scores); the rate of one threshold is ``Beta(n + 1 - k, k)``-distributed, and its expectation
and 95% bound are recorded with the fit (:func:`~medmm.models.mahalanobis.false_alarm_bound`;
:meth:`EmbeddingAnomaly.calibration_note` warns when the bound exceeds twice the rate). With fewer than
:data:`MIN_CALIBRATION_RECORDS` such images, the calibration scores are cross-fitted on the training
split instead (5 folds by patient, patients sharing an image in one fold: :func:`linked_groups`; one
score per distinct image), which states the rate approximately. The sorted calibration scores are kept,
so the threshold can be re-derived for another rate without refitting (:meth:`EmbeddingAnomaly.with_rate`,
``medmm predict --anomaly-rate``). A site re-derives it on its own normal studies by the same rule
(:func:`calibrate_on_records`, one score per distinct image; ``medmm predict --anomaly-calibration``).

The statistics are pure functions in :mod:`medmm.models.mahalanobis` (re-exported here); this module
runs them on a model's image representations.

>>> rng = np.random.default_rng(0)
>>> a = fit_embedding_anomaly(rng.normal(size=(400, 4)), rng.normal(size=(200, 4)), rate=0.05)
>>> bool(a.flag(a.score(np.full((1, 4), 6.0)))[0])
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medmm.models.mahalanobis import (
    CROSSFIT_FOLDS,
    DEFAULT_FALSE_ALARM_RATE,
    MIN_CALIBRATION_RECORDS,
    EmbeddingAnomaly,
    GaussianDensity,
    aggregate_scores,
    conformal_threshold,
    evaluate_anomaly_scores,
    fit_density,
    fit_embedding_anomaly,
    mahalanobis,
)

__all__ = [
    "CROSSFIT_FOLDS",
    "DEFAULT_FALSE_ALARM_RATE",
    "IMAGE",
    "MIN_CALIBRATION_RECORDS",
    "MIN_FIT_RECORDS",
    "EmbeddingAnomaly",
    "GaussianDensity",
    "aggregate_scores",
    "anomaly_report",
    "calibrate_on_records",
    "calibration_records",
    "calibration_set_id",
    "conformal_threshold",
    "evaluate_anomaly_scores",
    "fit_density",
    "fit_embedding_anomaly",
    "fit_on_split",
    "image_representations",
    "linked_groups",
    "load_embedding_anomaly",
    "mahalanobis",
    "score_records",
    "site_calibration_images",
]

#: The modality the score is about.
IMAGE = "image"
#: Fewer training records with an image than this: no density is fitted (no score).
MIN_FIT_RECORDS = 10


def _representation_name(model: Any) -> str:
    return "image encoder (late fusion)" if model.fusion.produces_logits else "fusion(image only)"


def image_representations(
    model: Any,
    records: pd.DataFrame,
    stores: Mapping[str, Any],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Image-only representations of the records with an image, one row per sample, on the host.

    The model runs on ``device`` (default: where its parameters are) with every modality but the image
    masked (:meth:`~medmm.models.model.MultimodalModel.fused_representation`); ``transform`` is applied
    there to each batch before the copy back (e.g. :func:`mahalanobis`). No label is read.
    Returns ``(rows [S, D'], record id of each row)``.
    """
    from medmm.models.data import MultimodalDataset
    from medmm.models.train import make_loader

    device = device or next(model.parameters()).device
    with_image = records[records[f"has_{IMAGE}"].to_numpy(bool)]
    if with_image.empty:
        return np.zeros((0, 0)), []
    others = [m for m in model.modalities if m != IMAGE]
    ds = MultimodalDataset(with_image, stores, [], drop=others)
    model.eval()
    rows, ids = [], []
    with torch.no_grad():
        for batch in make_loader(ds, batch_size, False, 0, device):
            batch = batch.to(device, non_blocking=device.type == "cuda")
            if model.fusion.produces_logits:  # late fusion: the image encoder's output
                h = model.embed(batch.inputs, batch.index, batch.mask.shape[0], batch.features)[IMAGE]
            else:
                h = model.fused_representation(batch.inputs, batch.index, batch.mask, batch.features)
            h = h.float() if transform is None else transform(h.float())
            rows.append(h.cpu().numpy().astype(np.float64))
            ids.extend(batch.record_ids)
    return np.concatenate(rows), ids


def calibration_records(train: pd.DataFrame, val: pd.DataFrame) -> pd.DataFrame:
    """The validation records whose scores calibrate the threshold: one per distinct image, none that
    shares its image or its patient with the training split.

    The conformal rate holds for a new record *exchangeable* with the calibration records. The score of
    a record is a function of its image alone, so records that share an image give one score several
    times (ties that make ``n`` look larger than the number of independent draws: the constructed cohort
    reuses each validation image 2-3 times); an image also in the training split is scored in-sample
    (too low); and a patient also in the training split (a splits file not made by patient) is not a new
    patient. ``val`` keeps its order; the first record of each image is kept.

    >>> t = pd.DataFrame({"patient_id": ["p1"], "image_id": ["a"]})
    >>> v = pd.DataFrame({"patient_id": ["p2", "p2", "p3", "p1"], "image_id": ["b", "b", "a", "c"]})
    >>> calibration_records(t, v)["image_id"].tolist()
    ['b']
    """
    keep = ~val[f"{IMAGE}_id"].isin(train[f"{IMAGE}_id"]) & ~val["patient_id"].isin(train["patient_id"])
    return val[keep].drop_duplicates(f"{IMAGE}_id")


def linked_groups(patients: Sequence[str], images: Sequence[str]) -> list[str]:
    """Cross-fitting groups: patients joined when they share an image (connected components), so no
    image is both fitted and scored; each group is named by its first patient in sorted order.

    >>> linked_groups(["p1", "p2", "p3", "p3"], ["a", "a", "b", "c"])
    ['p1', 'p1', 'p3', 'p3']
    """
    parent: dict[str, str] = {}

    def root(u: str) -> str:
        while parent.setdefault(u, u) != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    first: dict[str, str] = {}  # image -> the first patient seen with it
    for p, i in zip(patients, images, strict=True):
        a, b = root(p), root(first.setdefault(i, p))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(p) for p in patients]


def fit_on_split(
    model: Any,
    train: pd.DataFrame,
    val: pd.DataFrame | None,
    stores: Mapping[str, Any],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    aggregation: str = "mean",
    rate: float = DEFAULT_FALSE_ALARM_RATE,
    seed: int = 0,
) -> tuple[EmbeddingAnomaly | None, str | None]:
    """Fit the score of a trained model on its training split, calibrated on its validation split.

    The density's unit is the record, as in training: it models the population of records the score
    is applied to, so an image that several records share (the constructed cohort reuses items) weighs
    as often as it occurs. The calibration's unit is the distinct image of a new patient
    (:func:`calibration_records`: an image also in the training split would be in-sample, so the
    threshold too low; a reused image is one draw, not several).

    Returns ``(anomaly, None)``, or ``(None, why)`` when the model has no image modality or the training
    split has fewer than :data:`MIN_FIT_RECORDS` records with an image.
    """
    if IMAGE not in model.modalities:
        return None, "the model has no image modality: no imaging anomaly score"
    train = train[train[f"has_{IMAGE}"].to_numpy(bool)]
    if len(train) < MIN_FIT_RECORDS:
        return None, (
            f"the train split has {len(train)} record(s) with an image (< {MIN_FIT_RECORDS}): no imaging "
            "anomaly score fitted"
        )
    if val is not None:
        val = calibration_records(train, val)
    x, rec = image_representations(model, train, stores, batch_size=batch_size, device=device)
    by_record = train.set_index("record_id")
    image = [str(by_record.at[r, f"{IMAGE}_id"]) for r in rec]
    groups = linked_groups([str(by_record.at[r, "patient_id"]) for r in rec], image)
    cal, cal_rec = None, None
    if val is not None and len(val):
        cal, cal_rec = image_representations(model, val, stores, batch_size=batch_size, device=device)
    anomaly = fit_embedding_anomaly(
        x,
        cal if cal_rec else None,
        train_records=image,  # cross-fitted calibration scores: one per distinct image, as the validation's
        train_groups=groups,
        calibration_records=cal_rec,
        rate=rate,
        aggregation=aggregation,
        representation=_representation_name(model),
        seed=seed,
    )
    return anomaly, None


def score_records(
    anomaly: EmbeddingAnomaly,
    model: Any,
    records: pd.DataFrame,
    stores: Mapping[str, Any],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Score and flag every record of ``records``; distances are computed on the model's device.

    Returns one row per record, in order: ``record_id``, ``score`` (NaN without an image), ``flag``
    (``None`` without an image), ``n_samples`` (0 without an image). A record's slice scores combine by
    the fit's ``aggregation``, the one its threshold was calibrated with.
    """
    device = device or next(model.parameters()).device
    mean = torch.from_numpy(anomaly.density.mean).to(device)
    precision = torch.from_numpy(anomaly.density.precision).to(device)
    d, rec = image_representations(
        model,
        records,
        stores,
        batch_size=batch_size,
        device=device,
        transform=lambda h: mahalanobis(h, mean, precision)[:, None],
    )
    per = aggregate_scores(d[:, 0], rec, anomaly.aggregation) if rec else pd.Series(dtype=np.float64)
    counts = pd.Series(rec, dtype=object).value_counts() if rec else pd.Series(dtype=np.int64)
    ids = records["record_id"].astype(str)
    score = ids.map(per).to_numpy(np.float64)
    flag = anomaly.flag(score)
    return pd.DataFrame(
        {
            "record_id": ids.to_numpy(),
            "score": score,
            "flag": [None if np.isnan(s) else bool(f) for s, f in zip(score, flag, strict=True)],
            "n_samples": ids.map(counts).fillna(0).astype(int).to_numpy(),
        }
    )


def site_calibration_images(records: pd.DataFrame) -> pd.DataFrame:
    """The records of a site's calibration run that calibrate: those with an image, one per distinct
    image (the first), as :func:`calibration_records` does for the validation split.

    >>> r = pd.DataFrame({"record_id": ["a", "b", "c"], "has_image": [True, True, False],
    ...                   "image_id": ["x", "x", None]})
    >>> site_calibration_images(r)["record_id"].tolist()
    ['a']
    """
    with_image = records[records[f"has_{IMAGE}"].to_numpy(bool)]
    return with_image.drop_duplicates(f"{IMAGE}_id")


def calibration_set_id(image_ids: Sequence[str]) -> str:
    """A name for a calibration set that identifies it without naming anything in it: ``site:`` and the
    first 16 hex digits of the SHA-256 of its sorted distinct image ids (already site-key pseudonyms).

    >>> calibration_set_id(["b", "a", "a"]) == calibration_set_id(["a", "b"])
    True
    >>> calibration_set_id(["a", "b"])[:5]
    'site:'
    """
    joined = "\n".join(sorted({str(i) for i in image_ids}))
    return "site:" + hashlib.sha256(joined.encode()).hexdigest()[:16]


def calibrate_on_records(
    anomaly: EmbeddingAnomaly,
    model: Any,
    records: pd.DataFrame,
    stores: Mapping[str, Any],
    *,
    rate: float | None = None,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> EmbeddingAnomaly:
    """The fit with its threshold re-derived from the scores of ``records`` (a site's normal studies):
    one score per distinct image (:func:`site_calibration_images`), the same conformal rule
    (:meth:`~EmbeddingAnomaly.recalibrated`), at ``rate`` (default: the fit's); the density is unchanged.

    Raises ``ValueError`` when no record has an image.
    """
    cal = site_calibration_images(records)
    if cal.empty:
        raise ValueError("no calibration record has an image")
    table = score_records(anomaly, model, cal, stores, batch_size=batch_size, device=device)
    return anomaly.recalibrated(table["score"].to_numpy(), rate, "site")


def anomaly_report(
    anomaly: EmbeddingAnomaly,
    model: Any,
    records: pd.DataFrame,
    stores: Mapping[str, Any],
    label_names: Sequence[str],
    *,
    batch_size: int = 64,
    device: torch.device | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The fit's :meth:`~EmbeddingAnomaly.summary` and, on ``records`` (e.g. the test split), the
    :func:`evaluate_anomaly_scores` of its scores against ``label_names`` (``metrics.json``)."""
    from medmm.models.data import label_matrix

    scored = score_records(anomaly, model, records, stores, batch_size=batch_size, device=device)
    y = label_matrix(records.reset_index(drop=True), list(label_names))
    out = {"fit": anomaly.summary(), "records": len(records)}
    out.update(
        evaluate_anomaly_scores(
            scored["score"].to_numpy(), y, list(label_names), anomaly.threshold, n_boot, seed
        )
    )
    return out


def load_embedding_anomaly(
    checkpoint: Path, data: Mapping[str, Any] | None = None
) -> tuple[EmbeddingAnomaly | None, str | None]:
    """The fitted score stored in a checkpoint, or ``(None, why)`` (older checkpoints have none).

    ``data``: the checkpoint already loaded by :func:`~medmm.models.checkpoint.load_checkpoint` (then
    the file is not read again; ``checkpoint`` only names it in messages).

    >>> import tempfile
    >>> from medmm.models.checkpoint import save_checkpoint
    >>> old = save_checkpoint(Path(tempfile.mkdtemp()) / "model.pt", {}, {"config": {}})
    >>> anomaly, why = load_embedding_anomaly(old)
    >>> anomaly is None, "re-train" in why
    (True, True)
    """
    from medmm.models.checkpoint import load_checkpoint

    if data is None:
        data = load_checkpoint(checkpoint)
    state = data.get("embedding_anomaly")
    if state is None:
        entry = data["meta"].get("embedding_anomaly")
        why = entry.get("note") if isinstance(entry, dict) else None
        return None, why or (
            f"{checkpoint} has no imaging anomaly statistics (written by a medmm version before they were "
            "fitted): no embedding anomaly score. Fix: re-train with `medmm train` or `medmm models compare` "
            "to get it"
        )
    try:
        return EmbeddingAnomaly.from_state(state), None
    except ValueError as exc:
        return None, f"{checkpoint}: its embedding_anomaly entry is unreadable ({exc}): no score"

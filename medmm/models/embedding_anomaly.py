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
the fit and of the calibration is the record (:func:`fit_on_split`): the score finds what is *rare among
the training records' images*, so an abnormality as common there as the normal finding is no anomaly.

Threshold (split conformal, Vovk et al. 2005; Angelopoulos & Bates 2021). The record scores of the
validation split (held out from the density fit) are sorted, ``s_(1) <= ... <= s_(n)``, and the
threshold is ``s_(k)`` with ``k = ceil((n + 1) (1 - rate))``; a record is flagged when its score is
above it. For a new record exchangeable with the validation records, ``P(flag) <= rate`` (and
``>= rate - 1 / (n + 1)`` for continuous scores): ``rate`` (default 0.05) is the expected false-alarm rate
on data like the training data. With fewer than :data:`MIN_CALIBRATION_RECORDS` validation records
with an image, the calibration scores are cross-fitted on the training split instead (5 folds by patient: each
fold scored by a density fitted without it), which states the rate approximately. The sorted calibration
scores are kept, so the threshold can be re-derived for another rate without refitting
(:meth:`EmbeddingAnomaly.with_rate`, ``medmm predict --anomaly-rate``).

>>> rng = np.random.default_rng(0)
>>> a = fit_embedding_anomaly(rng.normal(size=(400, 4)), rng.normal(size=(200, 4)), rate=0.05)
>>> rate = float(np.mean(a.flag(a.score(rng.normal(size=(2000, 4))))))  # new inliers flagged
>>> a.calibration_source, 0.03 < rate < 0.08
('validation', True)
>>> bool(a.flag(a.score(np.full((1, 4), 6.0)))[0])
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

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
    "conformal_threshold",
    "evaluate_anomaly_scores",
    "fit_density",
    "fit_embedding_anomaly",
    "fit_on_split",
    "image_representations",
    "load_embedding_anomaly",
    "mahalanobis",
    "score_records",
]

#: The modality the score is about.
IMAGE = "image"
#: Expected false-alarm rate of the flag on data like the training data (the conformal level).
DEFAULT_FALSE_ALARM_RATE = 0.05
#: Fewer training records with an image than this: no density is fitted (no score).
MIN_FIT_RECORDS = 10
#: Fewer validation records with an image than this: calibration scores are cross-fitted on training.
MIN_CALIBRATION_RECORDS = 20
#: Folds (by patient) of the cross-fitted calibration scores.
CROSSFIT_FOLDS = 5
#: Version of the checkpoint entry written by :meth:`EmbeddingAnomaly.to_state`.
STATE_VERSION = 1


@dataclass
class GaussianDensity:
    """Mean ``[D]`` and precision ``[D, D]`` (inverse Ledoit-Wolf covariance) of the fitted samples."""

    mean: np.ndarray
    precision: np.ndarray
    shrinkage: float
    n_fit: int

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of the rows of ``x`` ``[N, D]`` (NaN rows give NaN).

        >>> d = GaussianDensity(np.zeros(2), np.eye(2), 0.0, 1)
        >>> d.distance(np.array([[3.0, 4.0], [np.nan, 0.0]])).tolist()
        [5.0, nan]
        """
        diff = np.asarray(x, np.float64) - self.mean
        sq = np.einsum("nd,de,ne->n", diff, self.precision, diff)
        return np.sqrt(np.maximum(sq, 0.0))


def fit_density(x: np.ndarray) -> GaussianDensity:
    """Fit the Gaussian of the rows of ``x`` ``[N, D]`` with the Ledoit-Wolf shrinkage covariance.

    >>> d = fit_density(np.random.default_rng(0).normal(size=(500, 3)))
    >>> d.n_fit, bool(np.allclose(d.precision, np.eye(3), atol=0.2))
    (500, True)
    """
    from sklearn.covariance import LedoitWolf

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"need >= 2 finite rows [N, D] to fit a density, got shape {x.shape}")
    lw = LedoitWolf(store_precision=True, assume_centered=False).fit(x)
    return GaussianDensity(lw.location_, lw.precision_, float(lw.shrinkage_), len(x))


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Mahalanobis distances of the rows of ``x`` on ``x``'s device (float64 where the device has it).

    >>> mahalanobis(torch.tensor([[3.0, 4.0]]), torch.zeros(2), torch.eye(2)).tolist()
    [5.0]
    """
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    diff = x.to(dtype) - mean.to(x.device, dtype)
    sq = ((diff @ precision.to(x.device, dtype)) * diff).sum(dim=1)
    return sq.clamp_min(0).sqrt()


def conformal_threshold(scores: np.ndarray, rate: float) -> tuple[float, bool]:
    """The split-conformal threshold ``s_(k)``, ``k = ceil((n + 1) (1 - rate))``, of calibration scores.

    Returns ``(threshold, exact)``; ``exact`` is False when there are too few scores for ``rate``
    (``k > n``): the threshold is then the largest score and the false-alarm rate above ``rate``.

    >>> conformal_threshold(np.arange(1.0, 20.0), 0.1)
    (18.0, True)
    >>> conformal_threshold(np.arange(1.0, 5.0), 0.05)
    (4.0, False)
    """
    if not 0 < rate < 1:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    s = np.sort(np.asarray(scores, np.float64)[np.isfinite(scores)])
    if not len(s):
        raise ValueError("no finite calibration score")
    k = math.ceil((len(s) + 1) * (1 - rate))
    return (float(s[k - 1]), True) if k <= len(s) else (float(s[-1]), False)


def aggregate_scores(scores: np.ndarray, records: Sequence[str], how: str = "mean") -> pd.Series:
    """One score per record (``mean`` or ``max`` of its samples' scores), in order of first appearance.

    >>> aggregate_scores(np.array([1.0, 3.0, 2.0]), ["a", "a", "b"], "max").to_dict()
    {'a': 3.0, 'b': 2.0}
    """
    if how not in ("mean", "max"):
        raise ValueError(f"unknown aggregation {how!r}; choose mean or max")
    s = pd.Series(np.asarray(scores, np.float64), index=pd.Index(list(records), name="record_id"))
    return s.groupby(level=0, sort=False).agg(how)


@dataclass
class EmbeddingAnomaly:
    """A fitted density with its threshold; what the checkpoint stores (:meth:`to_state`).

    ``calibration`` holds the sorted record scores the threshold was taken from, ``calibration_source``
    where they came from (``validation``, ``train_crossfit`` or ``train_in_sample``), ``exact`` whether
    there were enough of them for the rate, ``representation`` what was embedded and ``aggregation``
    how slice scores combine.
    """

    density: GaussianDensity
    threshold: float
    rate: float
    calibration: np.ndarray
    calibration_source: str
    exact: bool
    representation: str = "fusion(image only)"
    aggregation: str = "mean"

    def score(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of representations ``x`` ``[N, D]``; NaN rows (no image) give NaN."""
        return self.density.distance(x)

    def flag(self, scores: np.ndarray) -> np.ndarray:
        """``scores > threshold`` (False where the score is NaN)."""
        s = np.asarray(scores, np.float64)
        return np.where(np.isnan(s), False, s > self.threshold)

    def with_rate(self, rate: float) -> EmbeddingAnomaly:
        """The same density with the threshold re-derived from the calibration scores for ``rate``.

        >>> a = fit_embedding_anomaly(np.random.default_rng(1).normal(size=(100, 2)), rate=0.05)
        >>> a.with_rate(0.2).threshold < a.threshold
        True
        """
        threshold, exact = conformal_threshold(self.calibration, rate)
        return EmbeddingAnomaly(
            self.density,
            threshold,
            rate,
            self.calibration,
            self.calibration_source,
            exact,
            self.representation,
            self.aggregation,
        )

    def summary(self) -> dict[str, Any]:
        """Plain-type description (``metrics.json``, ``run.json``)."""
        return {
            "threshold": self.threshold,
            "false_alarm_rate": self.rate,
            "rate_exact": self.exact,
            "calibration_source": self.calibration_source,
            "n_calibration": len(self.calibration),
            "n_fit_samples": self.density.n_fit,
            "dim": len(self.density.mean),
            "shrinkage": self.density.shrinkage,
            "representation": self.representation,
            "aggregation": self.aggregation,
        }

    def to_state(self) -> dict[str, Any]:
        """Tensors and plain types only (loads with ``torch.load(weights_only=True)``), on the CPU."""
        return {
            "version": STATE_VERSION,
            "mean": torch.from_numpy(np.asarray(self.density.mean, np.float64).copy()),
            "precision": torch.from_numpy(np.asarray(self.density.precision, np.float64).copy()),
            "calibration": torch.from_numpy(np.asarray(self.calibration, np.float64).copy()),
            "shrinkage": float(self.density.shrinkage),
            "n_fit": int(self.density.n_fit),
            "threshold": float(self.threshold),
            "rate": float(self.rate),
            "exact": bool(self.exact),
            "calibration_source": self.calibration_source,
            "representation": self.representation,
            "aggregation": self.aggregation,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EmbeddingAnomaly:
        """Inverse of :meth:`to_state`; a malformed entry raises ``ValueError``.

        >>> a = fit_embedding_anomaly(np.random.default_rng(2).normal(size=(50, 3)))
        >>> EmbeddingAnomaly.from_state(a.to_state()).threshold == a.threshold
        True
        """
        try:
            if int(state["version"]) != STATE_VERSION:
                raise ValueError(f"version {state['version']} (this medmm reads {STATE_VERSION})")
            mean = state["mean"].cpu().numpy().astype(np.float64)
            precision = state["precision"].cpu().numpy().astype(np.float64)
            if precision.shape != (len(mean), len(mean)):
                raise ValueError(f"precision {precision.shape} does not match the mean ({len(mean)})")
            density = GaussianDensity(mean, precision, float(state["shrinkage"]), int(state["n_fit"]))
            return cls(
                density,
                float(state["threshold"]),
                float(state["rate"]),
                state["calibration"].cpu().numpy().astype(np.float64),
                str(state["calibration_source"]),
                bool(state["exact"]),
                str(state["representation"]),
                str(state["aggregation"]),
            )
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"malformed embedding_anomaly entry ({type(exc).__name__}: {exc})") from None


def _crossfit(
    x: np.ndarray, records: np.ndarray, groups: np.ndarray, how: str, folds: int, seed: int
) -> tuple[np.ndarray, str]:
    """Record scores of the training samples, each from a density fitted without its group's fold."""
    unique = np.unique(groups)
    k = min(folds, len(unique))
    if k < 2:
        scores = fit_density(x).distance(x)
        return aggregate_scores(scores, records.tolist(), how).to_numpy(), "train_in_sample"
    order = np.random.default_rng(seed).permutation(unique)
    fold_of = {g: i % k for i, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    scores = np.full(len(x), np.nan)
    for f in range(k):
        held = fold == f
        if (~held).sum() < 2:
            continue
        scores[held] = fit_density(x[~held]).distance(x[held])
    return aggregate_scores(scores, records.tolist(), how).dropna().to_numpy(), "train_crossfit"


def fit_embedding_anomaly(
    train: np.ndarray,
    calibration: np.ndarray | None = None,
    *,
    train_records: Sequence[str] | np.ndarray | None = None,
    train_groups: Sequence[str] | np.ndarray | None = None,
    calibration_records: Sequence[str] | np.ndarray | None = None,
    rate: float = DEFAULT_FALSE_ALARM_RATE,
    aggregation: str = "mean",
    representation: str = "fusion(image only)",
    seed: int = 0,
) -> EmbeddingAnomaly:
    """Fit the density on ``train`` ``[N, D]`` and the threshold on held-out record scores (pure numpy).

    Parameters
    ----------
    train
        Training representations, one row per sample (a slice with ``image_input.slice: all``).
    calibration
        Held-out representations (the validation split); ``None`` or fewer than
        :data:`MIN_CALIBRATION_RECORDS` records: cross-fitted training scores instead.
    train_records, calibration_records
        The record of each row (default: each row its own record); a record's score aggregates its rows.
    train_groups
        The patient of each training row: cross-fitting folds never split a patient (default: records).
    rate
        Expected false-alarm rate of the flag (the conformal level).
    aggregation
        ``mean`` or ``max``: how the rows of a record combine.
    representation
        What ``train`` holds (recorded with the fit).
    seed
        Seeds the assignment of patients to cross-fitting folds.
    """
    train = np.asarray(train, np.float64)
    t_rec = np.asarray(train_records if train_records is not None else np.arange(len(train)).astype(str))
    groups = np.asarray(train_groups if train_groups is not None else t_rec)
    density = fit_density(train)
    source = "validation"
    cal_scores = np.zeros(0)
    if calibration is not None and len(calibration):
        c_rec = (
            calibration_records
            if calibration_records is not None
            else np.arange(len(calibration)).astype(str)
        )
        cal_scores = aggregate_scores(density.distance(calibration), list(c_rec), aggregation).to_numpy()
    if len(cal_scores) < MIN_CALIBRATION_RECORDS:
        cal_scores, source = _crossfit(train, t_rec, groups, aggregation, CROSSFIT_FOLDS, seed)
    threshold, exact = conformal_threshold(cal_scores, rate)
    return EmbeddingAnomaly(
        density, threshold, rate, np.sort(cal_scores), source, exact, representation, aggregation
    )


# ----------------------------------------------------------------------------------- torch adapter


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

    The unit is the record, as in training: the density models the population of records the score
    is applied to, so an image that several records share (the constructed cohort reuses items) weighs
    as often as it occurs. A validation record whose image is also in the training split is left out of
    the calibration (its distance would be in-sample, so the threshold too low).

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
        val = val[~val[f"{IMAGE}_id"].isin(train[f"{IMAGE}_id"])]
    x, rec = image_representations(model, train, stores, batch_size=batch_size, device=device)
    patient = train.set_index("record_id")["patient_id"].astype(str)
    groups = [str(patient[r]) for r in rec]
    cal, cal_rec = None, None
    if val is not None and len(val):
        cal, cal_rec = image_representations(model, val, stores, batch_size=batch_size, device=device)
    anomaly = fit_embedding_anomaly(
        x,
        cal if cal_rec else None,
        train_records=rec,
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
    aggregation: str | None = None,
) -> pd.DataFrame:
    """Score and flag every record of ``records``; distances are computed on the model's device.

    Returns one row per record, in order: ``record_id``, ``score`` (NaN without an image), ``flag``
    (``None`` without an image), ``n_samples`` (0 without an image). ``aggregation`` (default: the fit's)
    combines a record's slice scores.
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
    how = aggregation or anomaly.aggregation
    per = aggregate_scores(d[:, 0], rec, how) if rec else pd.Series(dtype=np.float64)
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


def evaluate_anomaly_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """AUROC / AUPRC of the label-free score against each label, and the flag's sensitivity, specificity,
    accuracy and F1 (flag = score above ``threshold``), with bootstrap CIs over the records with a score.

    Labels are used here only, to evaluate. ``labels`` ``[N, L]`` may hold NaN (unknown).

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, (300, 1)).astype(float)
    >>> r = evaluate_anomaly_scores(rng.normal(size=300) + 2 * y[:, 0], y, ["a"], 1.5, n_boot=50)
    >>> r["n"], r["metrics"]["a"]["auroc"]["value"] > 0.8
    (300, True)
    """
    from medmm.models.metrics import evaluate_predictions

    s = np.asarray(scores, np.float64)
    keep = np.isfinite(s)
    y = np.asarray(labels, np.float64).reshape(len(s), len(names))[keep]
    s = s[keep]
    # binary_metrics flags p >= threshold; the anomaly flag is score > threshold
    at = float(np.nextafter(threshold, np.inf))
    metrics = evaluate_predictions(y, np.repeat(s[:, None], len(names), 1), names, n_boot, seed, threshold=at)
    for cells in metrics.values():
        cells.pop("ece", None)  # distances are not probabilities: no calibration error
    return {
        "n": len(s),
        "flag_rate": float(np.mean(s > threshold)) if len(s) else float("nan"),
        "metrics": metrics,
    }


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
    aggregation: str | None = None,
) -> dict[str, Any]:
    """The fit's :meth:`~EmbeddingAnomaly.summary` and, on ``records`` (e.g. the test split), the
    :func:`evaluate_anomaly_scores` of its scores against ``label_names`` (``metrics.json``)."""
    from medmm.models.data import label_matrix

    scored = score_records(
        anomaly, model, records, stores, batch_size=batch_size, device=device, aggregation=aggregation
    )
    y = label_matrix(records.reset_index(drop=True), list(label_names))
    out = {"fit": anomaly.summary(), "records": len(records)}
    out.update(
        evaluate_anomaly_scores(
            scored["score"].to_numpy(), y, list(label_names), anomaly.threshold, n_boot, seed
        )
    )
    return out


def load_embedding_anomaly(checkpoint: Path) -> tuple[EmbeddingAnomaly | None, str | None]:
    """The fitted score stored in a checkpoint, or ``(None, why)`` (older checkpoints have none).

    >>> import tempfile
    >>> from medmm.models.checkpoint import save_checkpoint
    >>> old = save_checkpoint(Path(tempfile.mkdtemp()) / "model.pt", {}, {"config": {}})
    >>> anomaly, why = load_embedding_anomaly(old)
    >>> anomaly is None, "re-train" in why
    (True, True)
    """
    from medmm.models.checkpoint import load_checkpoint

    data = load_checkpoint(checkpoint)
    state = data.get("embedding_anomaly")
    if state is None:
        entry = data["meta"].get("embedding_anomaly")
        why = entry.get("note") if isinstance(entry, dict) else None
        return None, why or (
            f"{checkpoint} has no imaging anomaly statistics (written by `medmm models compare`, or by "
            "medmm before it fitted them): no embedding anomaly score. Fix: re-train with `medmm train` to "
            "get it"
        )
    try:
        return EmbeddingAnomaly.from_state(state), None
    except ValueError as exc:
        return None, f"{checkpoint}: its embedding_anomaly entry is unreadable ({exc}): no score"

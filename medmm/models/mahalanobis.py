"""A label-free anomaly score on vectors: a Gaussian density with the Ledoit-Wolf shrinkage covariance,
the Mahalanobis distance as the score, and a split-conformal threshold at a stated false-alarm rate.

Pure numpy (and torch for :func:`mahalanobis` on a device); :mod:`medmm.models.embedding_anomaly` applies
it to a trained model's image representations and documents the choices.

>>> rng = np.random.default_rng(0)
>>> a = fit_embedding_anomaly(rng.normal(size=(400, 4)), rng.normal(size=(200, 4)), rate=0.05)
>>> rate = float(np.mean(a.flag(a.score(rng.normal(size=(2000, 4))))))  # new inliers flagged
>>> a.calibration_source, 0.03 < rate < 0.08
('validation', True)
>>> bool(a.flag(a.score(np.full((1, 4), 6.0)))[0])
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = [
    "CROSSFIT_FOLDS",
    "DEFAULT_FALSE_ALARM_RATE",
    "MIN_CALIBRATION_RECORDS",
    "EmbeddingAnomaly",
    "GaussianDensity",
    "aggregate_scores",
    "conformal_threshold",
    "evaluate_anomaly_scores",
    "false_alarm_bound",
    "fit_density",
    "fit_embedding_anomaly",
    "mahalanobis",
]

#: Expected false-alarm rate of the flag on data like the training data (the conformal level).
DEFAULT_FALSE_ALARM_RATE = 0.05
#: Fewer calibration records than this: calibration scores are cross-fitted on the training rows.
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


def false_alarm_bound(n: int, rate: float, confidence: float = 0.95) -> tuple[float, float]:
    """What ``n`` calibration scores promise about the flag rate on new exchangeable records.

    Returns ``(expected, upper)``: ``expected`` = ``(n + 1 - k) / (n + 1)`` with ``k`` the threshold's rank
    (:func:`conformal_threshold`, ``k = n`` when there are too few scores) is the flag probability averaged
    over calibration sets (``<= rate`` when ``k`` exists); but *this* threshold's false-alarm rate is a
    random variable, ``Beta(n + 1 - k, k)`` for continuous scores (Vovk 2012, training-conditional
    validity), and ``upper`` is its ``confidence`` quantile: with probability ``confidence`` over the draw
    of the calibration records, the rate on new records like them is at most ``upper``. Few scores give
    a wide margin (n = 19 at rate 0.05: upper 0.146; n = 90: 0.088; n = 1000: 0.062).

    >>> [round(x, 3) for x in false_alarm_bound(19, 0.05)]
    [0.05, 0.146]
    >>> [round(x, 3) for x in false_alarm_bound(4, 0.05)]  # too few for 5%: the largest score is used
    [0.2, 0.527]
    """
    from scipy.stats import beta

    if n < 1:
        raise ValueError("no calibration score")
    if not 0 < rate < 1 or not 0 < confidence < 1:
        raise ValueError(f"rate and confidence must be in (0, 1), got {rate}, {confidence}")
    k = min(math.ceil((n + 1) * (1 - rate)), n)
    return (n + 1 - k) / (n + 1), float(beta.ppf(confidence, n + 1 - k, k))


@functools.lru_cache(maxsize=32)
def _needed(rate: float, factor: float = 2.0) -> int:
    """The calibration size from which on every 95% bound (:func:`false_alarm_bound`, which is not
    monotone in ``n``: the threshold's rank moves in steps) is ``<= factor * rate``.

    >>> _needed(0.05), _needed(0.01)
    (61, 313)
    """
    from scipy.stats import beta

    n = np.arange(1, math.ceil(40 / rate))
    k = np.minimum(np.ceil((n + 1) * (1 - rate)), n)
    over = np.flatnonzero(beta.ppf(0.95, n + 1 - k, k) > factor * rate)
    return int(n[over[-1]] + 1) if len(over) else 1


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

    ``calibration`` holds the sorted scores the threshold was taken from (one per calibration unit: the
    distinct image since session 9, the record in checkpoints of session 8), ``calibration_source``
    where they came from (``validation``, ``train_crossfit``, ``train_in_sample``, or ``site``: a site's
    normal studies, :meth:`recalibrated`), ``exact`` whether there were enough of them for the rate,
    ``representation`` what was embedded and ``aggregation`` how slice scores combine.
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
        return self.recalibrated(self.calibration, rate, self.calibration_source)

    def recalibrated(
        self, scores: np.ndarray, rate: float | None = None, source: str = "site"
    ) -> EmbeddingAnomaly:
        """The same density with the threshold taken from other calibration scores (e.g. one score per
        distinct image of a site's normal studies) by the same conformal rule, at ``rate`` (default: this
        fit's); non-finite scores are left out.

        >>> a = fit_embedding_anomaly(np.random.default_rng(1).normal(size=(100, 2)), rate=0.1)
        >>> b = a.recalibrated(np.arange(1.0, 20.0))
        >>> b.threshold, b.calibration_source, b.rate
        (18.0, 'site', 0.1)
        """
        s = np.asarray(scores, np.float64)
        s = np.sort(s[np.isfinite(s)])
        rate = self.rate if rate is None else rate
        threshold, exact = conformal_threshold(s, rate)
        return replace(
            self, threshold=threshold, rate=rate, calibration=s, calibration_source=source, exact=exact
        )

    def promise(self) -> tuple[float, float]:
        """``(expected, upper)`` false-alarm rate on new records like the calibration records
        (:func:`false_alarm_bound` of the calibration scores at this rate; 95% upper bound)."""
        return false_alarm_bound(len(self.calibration), self.rate)

    def calibration_note(self) -> str | None:
        """A warning when the calibration scores are too few to promise the stated rate, else ``None``.

        Too few: fewer than ``1 / rate - 1`` scores (no threshold reaches the rate: the largest score is
        used and at least ``1 / (n + 1)`` of new records are flagged), or so few that the rate of this
        threshold may, with 5% probability, exceed twice the stated one (:meth:`promise`; e.g. fewer
        than 61 scores at rate 0.05, 313 at 0.01). The message names what the flag rate may reach and
        the fix.

        >>> a = fit_embedding_anomaly(np.random.default_rng(0).normal(size=(400, 2)),
        ...                           np.random.default_rng(1).normal(size=(40, 2)), rate=0.05)
        >>> print(a.calibration_note()[:91])
        the imaging anomaly threshold was calibrated on 40 validation score(s): at the stated false
        >>> a.with_rate(0.3).calibration_note() is None
        True
        """
        n = len(self.calibration)
        expected, upper = self.promise()
        if self.exact and upper <= 2 * self.rate:
            return None
        source = {
            "validation": "validation",
            "train_crossfit": "cross-fitted training",
            "train_in_sample": "in-sample training",
            "site": "site normal-study",
        }.get(self.calibration_source, self.calibration_source)
        head = f"the imaging anomaly threshold was calibrated on {n} {source} score(s): "
        what = (
            f"too few for the false-alarm rate {self.rate:g} (at least {math.ceil(1 / self.rate - 1)} are "
            f"needed), so the largest is the threshold and about {expected:.1%} of new records like them "
            f"are flagged, up to {upper:.1%} (95% bound)"
            if not self.exact
            else f"at the stated false-alarm rate {self.rate:g} this threshold may flag up to {upper:.1%} "
            "of new records like them (95% bound; the rate is met on average over calibration sets, not "
            "for every one)"
        )
        more = (
            "add normal studies to the --anomaly-calibration run"
            if self.calibration_source == "site"
            else "train with more validation records with an image"
        )
        return (
            f"{head}{what}. Fix: {more} (distinct images: {_needed(self.rate)} for a 95% bound of twice "
            "the rate), or choose a larger --anomaly-rate"
        )

    def summary(self) -> dict[str, Any]:
        """Plain-type description (``metrics.json``, ``run.json``)."""
        expected, upper = self.promise()
        return {
            "threshold": self.threshold,
            "false_alarm_rate": self.rate,
            "rate_exact": self.exact,
            "false_alarm_expected": expected,
            "false_alarm_upper_95": upper,
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

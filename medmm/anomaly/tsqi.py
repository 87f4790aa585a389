"""Template-share signal-quality index (tSQI, v0.8): how much of each beat is explained by one of the
record's own recurring beat shapes, read over a few seconds and relative to the record.

Why (the v0.6 kSQI's blind spot): the kurtosis of a window falls when noise is added, but also when the
window holds several wide ectopic beats - a PVC run is less peaked than sinus rhythm - so the kSQI
discounted genuine PVCs in dense ectopy. A quality index should instead ask "is there energy here that
is *not* ECG?". An ECG is a sequence of beats whose shapes recur (sinus beats, and the beats of each
ectopic focus); noise does not recur. So (label-free, per record, on the band-passed lead):

1. **segments**: each beat's stretch ``R - 0.25 s ... R + 0.40 s`` (the model's beat window,
   :class:`medmm.anomaly.features.WindowSpec`), cut at half of the adjacent RR intervals so a
   neighbouring beat never enters another beat's segment;
2. **templates**: the beats are aligned by their best shift (+- 30 ms, the R-fiducial jitter allowed by
   :func:`medmm.anomaly.features.qrs_residual`) to the record's median beat, then grouped by leader
   clustering in time order (a beat joins the most similar existing group if its cosine similarity to
   the group's first beat is >= 0.9, else it starts a group - the usual beat-template rule);
3. **templates**: a group with >= 5 beats (the look-alike count of the scorer) is a recurring shape
   and the point-wise median of its aligned beats is a template. Noise does not recur, so it forms no
   template; a PVC focus with >= 5 beats does;
4. **beat share**: ``s = max(0, cos)^2`` of the beat's segment with its best template at its best shift
   (+- 30 ms) - for a beat ``a x template + independent noise`` this is the share of the segment's
   energy that is the template (the gain is free: amplitude changes are not noise);
5. **window index**: the median of ``s`` over the beats within ``R +- 2.5 s`` (the kSQI window,
   :data:`medmm.anomaly.sqi.KSQI_HALF_WINDOW_S`) - the median, so one or two beats with a rare shape
   (fewer than 5 in the record: no template) do not make their window look noisy, while noise spanning
   most of the window does;
6. **relative to the record**: ``template_share_rel = q / median_record(q)``; all ones when the record
   has no template or its median is <= 0.1 (no reference).

The scorer (:func:`medmm.anomaly.score.quality_weight`, ``ScoreConfig.template_sqi``) caps a beat's
weight at ``min(1, template_share_rel)`` - the same quantity that ``sqrt(kurtosis_rel)`` estimated for
the kSQI (the share of the window's variance that is the record's ECG, relative to the record's typical
window), estimated from the templates instead of from kurtosis. Rule and constants fixed before any
measurement (docs/anomaly.md, "Results v0.8").

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> fs = 360.0; peaks = np.arange(360, 71640, 288)
>>> t = np.arange(72000) / fs
>>> sig = rng.normal(0, 0.01, t.size)
>>> for p in peaks: sig += np.exp(-0.5 * ((t - p / fs) / 0.012) ** 2)
>>> sig[36000:37800] += rng.normal(0, 0.4, 1800)  # a 5-s noise burst
>>> q = template_share_rel(sig, fs, peaks)
>>> i = int(np.searchsorted(peaks, 36900))
>>> bool(abs(np.median(q) - 1.0) < 1e-6 and q[i] < 0.5)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medmm.anomaly.sqi import KSQI_HALF_WINDOW_S

__all__ = [
    "TSQI_MIN_COS",
    "TSQI_MIN_MEMBERS",
    "TSQI_SEGMENT_S",
    "TSQI_SHIFT_S",
    "beat_template_share",
    "template_share_rel",
]

#: Beat segment around the R peak (seconds before, after): the model's beat window.
TSQI_SEGMENT_S = (0.25, 0.40)
#: Largest R-fiducial shift tried when matching a beat to a template (as in ``qrs_residual``).
TSQI_SHIFT_S = 0.03
#: Cosine similarity to a group's first beat needed to join the group (the usual template rule).
TSQI_MIN_COS = 0.9
#: Beats a group needs to count as a recurring shape (a template); the scorer's look-alike count.
TSQI_MIN_MEMBERS = 5
#: Most groups the leader clustering opens (bounds the cost in very noisy records).
TSQI_MAX_GROUPS = 256


def _segments(
    x: NDArray[np.float64], fs: float, s: NDArray[np.int64], margin: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Segments and masks with ``margin`` extra samples each side (n, L + 2 margin), core length L.

    The mask is 1 where the sample lies within the record and within half of the adjacent RR
    intervals of the beat (so no neighbouring beat enters the segment).
    """
    pre, post = round(TSQI_SEGMENT_S[0] * fs), round(TSQI_SEGMENT_S[1] * fs)
    off = np.arange(-pre - margin, post + margin + 1)
    pos = s[:, None] + off[None, :]
    seg = x[np.clip(pos, 0, x.size - 1)]
    rr = np.diff(s).astype(np.float64)
    prev = np.concatenate([[np.inf], rr]) / 2.0
    nxt = np.concatenate([rr, [np.inf]]) / 2.0
    mask = (off[None, :] >= -prev[:, None]) & (off[None, :] < nxt[:, None])
    mask &= (pos >= 0) & (pos < x.size)
    return seg, mask.astype(np.float64), off.size - 2 * margin


def _best_cos(
    seg: NDArray[np.float64], mask: NDArray[np.float64], templates: NDArray[np.float64], n_core: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Per beat: the largest masked cosine over templates x shifts, its template and its shift index.

    ``seg`` (n, L) are the beats' core segments, ``templates`` (C, L + 2 margin) carry the margin so a
    template can slide by +- margin samples.
    """
    n = seg.shape[0]
    width = templates.shape[1] - n_core + 1
    masked = seg * mask
    norm_s = np.sqrt((masked**2).sum(axis=1))
    best = np.full(n, -np.inf)
    which = np.zeros(n, np.int64)
    shift = np.zeros(n, np.int64)
    for k in range(width):
        tk = templates[:, k : k + n_core]  # (C, L)
        num = masked @ tk.T  # (n, C)
        den = np.sqrt(mask @ (tk**2).T) * norm_s[:, None]
        cos = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)
        c = np.argmax(cos, axis=1)
        v = cos[np.arange(n), c]
        better = v > best
        best[better], which[better], shift[better] = v[better], c[better], k
    return best, which, shift


def beat_template_share(
    x: NDArray[np.floating], fs: float, samples: NDArray[np.integer]
) -> tuple[NDArray[np.float64], int]:
    """Each beat's energy share explained by its best record template (steps 1-4 of the module doc).

    Returns the shares in [0, 1] and the number of templates (0: no recurring shape, shares all 0).

    >>> import numpy as np
    >>> fs = 360.0; peaks = np.arange(360, 35640, 300)
    >>> t = np.arange(36000) / fs
    >>> sig = sum(np.exp(-0.5 * ((t - p / fs) / 0.012) ** 2) for p in peaks)
    >>> share, n_templates = beat_template_share(sig, fs, peaks)
    >>> n_templates, bool(share.min() > 0.99)
    (1, True)
    """
    v = np.nan_to_num(np.asarray(x, dtype=np.float64))
    s = np.asarray(samples, dtype=np.int64)
    n = s.size
    if n < TSQI_MIN_MEMBERS or v.size == 0:
        return np.zeros(n), 0
    m = max(round(TSQI_SHIFT_S * fs), 0)
    seg, full_mask, n_core = _segments(v, fs, s, m)
    core, mask = seg[:, m : m + n_core], full_mask[:, m : m + n_core]
    # step 2a: align every beat to the record's median beat (a consistent alignment for each shape).
    # Template column k + j meets beat column m + j, i.e. the beat's R sits d = m - k samples late;
    # its aligned segment is column j + m + d = j + 2m - k of ``seg`` (and of its mask).
    median_beat = np.median(seg, axis=0)[None, :]
    _, _, shift0 = _best_cos(core, mask, median_beat, n_core)
    idx = (2 * m - shift0)[:, None] + np.arange(n_core)[None, :]
    amask = np.take_along_axis(full_mask, idx, axis=1)
    aligned = np.take_along_axis(seg, idx, axis=1) * amask
    # step 2b: leader clustering in time order on the aligned, masked segments
    norms = np.sqrt((aligned**2).sum(axis=1))
    leaders = np.zeros((0, n_core))
    group = np.full(n, -1, np.int64)
    for i in range(n):
        if norms[i] <= 1e-12:
            continue
        if leaders.shape[0]:
            num = leaders @ aligned[i]
            den = np.sqrt((leaders**2) @ amask[i]) * norms[i]
            cos = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)
            j = int(np.argmax(cos))
            if cos[j] >= TSQI_MIN_COS:
                group[i] = j
                continue
        if leaders.shape[0] < TSQI_MAX_GROUPS:
            group[i] = leaders.shape[0]
            leaders = np.vstack([leaders, aligned[i]])
    counts = np.bincount(group[group >= 0], minlength=leaders.shape[0])
    keep = np.flatnonzero(counts >= TSQI_MIN_MEMBERS)
    if keep.size == 0:
        return np.zeros(n), 0
    # step 3: templates = point-wise median of each kept group's aligned segments (with the margin)
    pad = np.pad(seg, ((0, 0), (m, m)), mode="edge")  # padded column p = seg column p - m
    full_idx = (2 * m - shift0)[:, None] + np.arange(n_core + 2 * m)[None, :]
    seg_aligned = np.take_along_axis(pad, full_idx, axis=1)
    templates = np.stack([np.median(seg_aligned[group == g], axis=0) for g in keep])
    # step 4: each beat's best template at its best shift; share = max(0, cos)^2
    best, _, _ = _best_cos(core, mask, templates, n_core)
    return np.clip(best, 0.0, 1.0) ** 2, int(keep.size)


def template_share_rel(
    x: NDArray[np.floating], fs: float, samples: NDArray[np.integer], half_s: float = KSQI_HALF_WINDOW_S
) -> NDArray[np.float32]:
    """Window median of the beats' template shares, relative to the record (module steps 5-6).

    >>> import numpy as np
    >>> sig = np.zeros(36000); sig[::360] = 1.0
    >>> template_share_rel(sig, 360.0, np.arange(1800, 34000, 360))[:3].round(3).tolist()
    [1.0, 1.0, 1.0]
    """
    s = np.asarray(samples, dtype=np.int64)
    share, n_templates = beat_template_share(x, fs, s)
    if s.size == 0:
        return np.zeros(0, dtype=np.float32)
    h = max(round(half_s * fs), 1)
    lo = np.searchsorted(s, s - h, side="left")
    hi = np.searchsorted(s, s + h, side="right")
    q = np.array([np.median(share[a:b]) for a, b in zip(lo, hi, strict=True)])
    ref = float(np.median(q))
    if n_templates == 0 or ref <= 0.1:
        return np.ones(s.size, dtype=np.float32)
    return (q / ref).astype(np.float32)

"""Data, features and leave-one-patient-out for the ``covid_lopo`` study (``bench/bench_covid_lopo.py``).

Everything here is a plain function of arrays / frames so it can be tested without the data:

* :func:`load_cases` reads ``metadata_subset_licensed.csv`` (one case per image; target ``finding ==
  COVID-19``) and masks the words of the notes that name any of the four findings;
* :func:`load_image` reads one picture (PIL, grayscale) and normalises / resizes it with MONAI;
* :func:`intensity_texture_features` and :func:`random_conv_features` are the two *fixed* image feature
  extractors (nothing is trained or downloaded);
* :func:`findings_matrix` encodes the masked notes with medmm's report pipeline (present / absent /
  uncertain per finding);
* :func:`lopo_splits` / :func:`lopo_predict` run leave-one-patient-out with a per-fold scikit-learn model.

>>> mask_label_words("Elderly male, covid-19 positive; no Streptococcus pneumoniae.")
'Elderly male, positive; no .'
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.errors import reason_of

__all__ = [
    "LEAK",
    "findings_matrix",
    "intensity_texture_features",
    "load_cases",
    "load_image",
    "load_images",
    "lopo_predict",
    "lopo_splits",
    "mask_label_words",
    "random_conv_features",
]

#: Words naming the target or any of the other three findings, the COVID-19 test, or dating the case to
#: the outbreak; deleted from the notes (a visible ``[masked]`` token would itself mark COVID-19 notes).
LEAK = re.compile(
    r"covid[- ]?19|covid|sars[- ]?cov[- ]?2|sars|coronavirus|novel|\bn?cov\b|wuhan|hubei|2019"
    r"|streptococc\w*( pneumoniae)?|pneumococc\w*|pneumocystis( jirovecii| carinii)?( pneumonia)?"
    r"|\bpcp\b|\bpjp\b|\bards\b|acute respiratory distress syndrome"
    r"|rt[- ]?pcr|\bpcr\b|nucleic acid|swab|pandemic|epidemic|outbreak"
    r"|january|february|march|april|\b20(19|20)\b",
    re.I,
)
POSITIVE = "COVID-19"


def mask_label_words(text: str) -> str:
    """Delete every word of :data:`LEAK` (then squeeze the spaces left behind).

    >>> mask_label_words("ARDS after SARS-CoV-2 infection, RT-PCR positive in February")
    'after infection, positive in'
    """
    return re.sub(r"\s{2,}", " ", LEAK.sub("", text)).strip()


def load_cases(base: Path) -> pd.DataFrame:
    """One row per image of ``covid_chestxray_subset``: label, patient, acquisition and masked notes.

    Columns: ``patient`` (the data set's public ``Patientid``, pseudonymise before writing it out),
    ``y`` (1 = COVID-19), ``finding``, ``modality``, ``view``, ``location``, ``path`` (absolute),
    ``notes`` (masked). Raises ``FileNotFoundError`` naming the file when the metadata is missing.

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> root is None or len(load_cases(root / "covid_chestxray_subset")) == 34
    True
    """
    meta_path = Path(base) / "metadata_subset_licensed.csv"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: missing; point the study at covid_chestxray_subset/")
    meta = pd.read_csv(meta_path)
    return pd.DataFrame(
        {
            "patient": meta["Patientid"].astype(str),
            "y": (meta["finding"] == POSITIVE).astype(int),
            "finding": meta["finding"].astype(str),
            "modality": meta["modality"].astype(str),
            "view": meta["view"].astype(str),
            "location": meta["location"].fillna("unknown").astype(str),
            "path": [str(Path(base) / "images" / f) for f in meta["filename"]],
            "notes": [mask_label_words(str(t)) for t in meta["clinical notes"].fillna("")],
        }
    )


def load_image(path: str | Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Grayscale picture -> ``[1, size, size]`` float32 (MONAI: z-score, then area resize); native shape.

    Raises the reader's error (``OSError`` / ``FileNotFoundError``) for an unreadable file; the study
    quarantines that image and goes on.
    """
    from monai.transforms import Compose, NormalizeIntensity, Resize
    from PIL import Image

    with Image.open(path) as im:
        pic = np.asarray(im.convert("L"), dtype=np.float32)
    tf = Compose([NormalizeIntensity(), Resize((size, size), mode="area")])
    return np.asarray(tf(pic[None]), dtype=np.float32), (int(pic.shape[0]), int(pic.shape[1]))


def load_images(paths: list[str], size: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Load every path; returns images ``[N_ok, 1, S, S]``, native shapes and one manifest row per path.

    >>> imgs, shapes, manifest = load_images(["/nonexistent.png"], 32)
    >>> imgs.shape, manifest[0]["status"]
    ((0, 1, 32, 32), 'quarantined')
    """
    imgs, shapes, manifest = [], [], []
    for p in paths:
        try:
            img, shape = load_image(p, size)
        except Exception as exc:  # a bad image is quarantined with its reason, the study goes on
            manifest.append({"file": Path(p).name, "status": "quarantined", "reason": reason_of(exc)})
            continue
        imgs.append(img)
        shapes.append(shape)
        manifest.append({"file": Path(p).name, "status": "ingested", "reason": ""})
    return np.stack(imgs) if imgs else np.zeros((0, 1, size, size), np.float32), np.array(shapes), manifest


def _cooc(q: np.ndarray, dy: int, dx: int, levels: int) -> tuple[float, float, float]:
    a = q[: q.shape[0] - dy, : q.shape[1] - dx].ravel()
    b = q[dy:, dx:].ravel()
    m = np.zeros((levels, levels))
    np.add.at(m, (a, b), 1.0)
    m = (m + m.T) / (2 * m.sum())
    i, j = np.indices(m.shape)
    contrast = float((m * (i - j) ** 2).sum())
    homogeneity = float((m / (1.0 + np.abs(i - j))).sum())
    energy = float((m**2).sum())
    return contrast, homogeneity, energy


def intensity_texture_features(img: np.ndarray, levels: int = 16) -> np.ndarray:
    """Radiomics-like statistics of one ``[1, H, W]`` (or ``[H, W]``) image: 59 values, nothing learned.

    Intensity percentiles / moments, a 16-bin histogram of the 1-99% range, gradient magnitude and
    Laplacian statistics, grey-level co-occurrence contrast / homogeneity / energy at offsets 1 and 4
    (horizontal and vertical), left-right and top-bottom asymmetry, and a 4x4 grid of mean intensities.

    >>> f = intensity_texture_features(np.random.default_rng(0).random((32, 32)))
    >>> f.shape, bool(np.isfinite(f).all())
    ((59,), True)
    """
    x = np.asarray(img, dtype=np.float64).squeeze()
    lo, hi = np.percentile(x, [1, 99])
    u = np.clip((x - lo) / (hi - lo + 1e-8), 0.0, 1.0)
    z = (x - x.mean()) / (x.std() + 1e-8)
    feats: list[float] = list(np.percentile(u, [5, 25, 50, 75, 95]))
    feats += [float(u.mean()), float(u.std()), float((z**3).mean()), float((z**4).mean())]
    feats += list(np.histogram(u, bins=16, range=(0.0, 1.0))[0] / u.size)
    gy, gx = np.gradient(u)
    g = np.hypot(gx, gy)
    lap = np.abs(4 * u[1:-1, 1:-1] - u[:-2, 1:-1] - u[2:, 1:-1] - u[1:-1, :-2] - u[1:-1, 2:])
    feats += [float(g.mean()), float(g.std()), float(np.percentile(g, 90)), float(lap.mean())]
    q = np.minimum((u * levels).astype(int), levels - 1)
    for dy, dx in ((0, 1), (1, 0), (0, 4), (4, 0)):
        feats += list(_cooc(q, dy, dx, levels))
    feats += [float(np.abs(u - u[:, ::-1]).mean()), float(np.abs(u - u[::-1, :]).mean())]
    h, w = u.shape
    feats += [
        float(u[r * h // 4 : (r + 1) * h // 4, c * w // 4 : (c + 1) * w // 4].mean())
        for r in range(4)
        for c in range(4)
    ]
    return np.asarray(feats, dtype=np.float64)


def random_conv_features(images: np.ndarray, seed: int, width: int = 16) -> np.ndarray:
    """Frozen, randomly initialised (seeded) 4-stage conv net; global mean + max pooling -> ``[N, 8*width]``.

    A fixed random projection, not a trained encoder: its features are texture filters at four scales.

    >>> random_conv_features(np.zeros((2, 1, 32, 32), np.float32), seed=0).shape
    (2, 128)
    """
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    chans = [1, width, width, 2 * width, 4 * width]
    layers: list[nn.Module] = []
    for cin, cout in itertools.pairwise(chans):
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (9 * cin)) ** 0.5)
        layers += [conv, nn.ReLU(), nn.AvgPool2d(2)]
    net = nn.Sequential(*layers).eval()
    with torch.no_grad():
        out = net(torch.as_tensor(images, dtype=torch.float32))
        pooled = torch.cat([out.mean(dim=(2, 3)), out.amax(dim=(2, 3))], dim=1)
    return pooled.numpy().astype(np.float64)


def findings_matrix(notes: list[str]) -> tuple[np.ndarray, list[str]]:
    """medmm report pipeline (lexicon + NegEx-style assertion, in process) -> one-hot finding statuses.

    Columns ``"<finding>=<present|absent|uncertain>"`` for every (finding, status) seen in ``notes``
    (the vocabulary uses no labels; a column never seen in a training fold gets no weight there).

    >>> m, cols = findings_matrix(["No pleural effusion. Right lower lobe consolidation."])
    >>> sorted(c for c, v in zip(cols, m[0]) if v)[:2]
    ['consolidation=present', 'normal=absent']
    """
    import warnings

    from medmm.reports.io.inputs import ReportInput
    from medmm.reports.nlp import PipelineSpec
    from medmm.reports.pipeline import process_batch

    batch = [ReportInput(str(i), f"notes#{i}", "csv", t, len(t)) for i, t in enumerate(notes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = process_batch(batch, PipelineSpec())
    cols = sorted({f"{lab['finding']}={lab['status']}" for lab in res.labels})
    index = {c: j for j, c in enumerate(cols)}
    m = np.zeros((len(notes), len(cols)))
    for lab in res.labels:
        m[int(lab["report_id"]), index[f"{lab['finding']}={lab['status']}"]] = 1.0
    return m, cols


def lopo_splits(groups: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-group-out index pairs ``(train, test)``, groups in sorted order.

    >>> [(list(a), list(b)) for a, b in lopo_splits(np.array(["p", "q", "p"]))]
    [([1], [0, 2]), ([0, 2], [1])]
    """
    groups = np.asarray(groups)
    for g in np.unique(groups):
        yield np.flatnonzero(groups != g), np.flatnonzero(groups == g)


def lopo_predict(
    x: Any, y: np.ndarray, groups: np.ndarray, make_model: Callable[[], Any]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Fit ``make_model()`` on every leave-one-patient-out training fold; held-out P(y=1) per sample.

    ``x`` is an array (rows = samples) or a list (e.g. texts for a TF-IDF pipeline). Returns the pooled
    scores and one record per fold (held-out group, train / test sizes).

    >>> from sklearn.linear_model import LogisticRegression
    >>> x = np.array([[-2.0], [-1.5], [1.5], [2.0]])
    >>> groups = np.array(["a", "b", "c", "d"])
    >>> p, folds = lopo_predict(x, np.array([0, 0, 1, 1]), groups, lambda: LogisticRegression(C=100))
    >>> bool(p[2] > 0.5 > p[0]), len(folds)
    (True, 4)
    """
    from threadpoolctl import threadpool_limits

    y = np.asarray(y)
    scores = np.full(len(y), np.nan)
    folds = []
    # one BLAS thread: these fits are tiny, and multi-threaded BLAS made them ~20x slower (spin-waiting)
    with threadpool_limits(limits=1):
        for train, test in lopo_splits(groups):
            model = make_model()
            xt = [x[i] for i in train] if isinstance(x, list) else x[train]
            xs = [x[i] for i in test] if isinstance(x, list) else x[test]
            model.fit(xt, y[train])
            scores[test] = model.predict_proba(xs)[:, 1]
            folds.append({"group": str(groups[test[0]]), "n_train": len(train), "n_test": len(test)})
    return scores, folds

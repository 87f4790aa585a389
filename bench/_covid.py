"""Data, features and leave-one-patient-out for the COVID-19 studies (``bench_covid_lopo``, ``covid``).

The data go through medmm's standard stages, as a clinical researcher would run them on their own data
(``docs/covid.md`` gives the same sequence as shell commands):

1. :func:`write_notes_table` / :func:`write_label_table`: the user's preparation of the collection's
   ``metadata_subset_licensed.csv``: the clinical notes with every word that names a finding deleted
   (:func:`mask_label_words`), one report per picture (``report_id`` = ``study_id`` = file name), and the
   target ``covid`` (``finding == COVID-19``) per picture file;
2. :func:`build_run`: ``medmm ingest`` (pictures + ``--ids``), ``medmm reports parse`` (the notes table)
   and ``medmm align --labels`` (one record per picture with image, report and target);
3. :func:`load_cases` / :func:`load_images` / :func:`report_matrix`: the records with their analysis
   columns, the pictures through the models' :class:`medmm.models.volumes.VolumeSource` (the MONAI chain
   the Dataset uses) and the report findings vector ``medmm align`` wrote;
4. :func:`intensity_texture_features` and :func:`random_conv_features`: two *fixed* image feature
   extractors (nothing is trained or downloaded); :func:`lopo_splits` / :func:`lopo_predict` run
   leave-one-patient-out with a per-fold scikit-learn model.

>>> mask_label_words("Elderly male, covid-19 positive; no Streptococcus pneumoniae.")
'Elderly male, positive; no .'
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LABEL",
    "LEAK",
    "METADATA",
    "build_run",
    "intensity_texture_features",
    "load_cases",
    "load_images",
    "lopo_predict",
    "lopo_splits",
    "mask_label_words",
    "random_conv_features",
    "report_matrix",
    "write_label_table",
    "write_notes_table",
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
#: The record label: 1 = the picture's ``finding`` is COVID-19, 0 = any other finding.
LABEL = "covid"
#: The collection's metadata table inside ``covid_chestxray_subset/``.
METADATA = "metadata_subset_licensed.csv"


def mask_label_words(text: str) -> str:
    """Delete every word of :data:`LEAK` (then squeeze the spaces left behind).

    >>> mask_label_words("ARDS after SARS-CoV-2 infection, RT-PCR positive in February")
    'after infection, positive in'
    """
    return re.sub(r"\s{2,}", " ", LEAK.sub("", text)).strip()


def _metadata(meta_csv: Path) -> pd.DataFrame:
    path = Path(meta_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; point the study at covid_chestxray_subset/")
    return pd.read_csv(path, dtype={"Patientid": str})


def write_notes_table(meta_csv: Path, out_csv: Path) -> Path:
    """Masked clinical notes as a ``medmm reports parse`` table: one report per picture.

    Columns ``report_id`` and ``study_id`` (the picture's file name: each picture is its own study, as
    ``medmm ingest --study-column filename`` makes it), ``patient_id`` (the raw ``Patientid``, which
    ``reports parse --patient-column`` pseudonymises) and ``text`` (the notes after
    :func:`mask_label_words`). The column is named ``text`` because ``reports parse`` scores findings only
    in free text or FINDINGS / IMPRESSION sections (see ``docs/covid.md``, *Gaps*). The table holds raw
    patient ids: keep it beside the data, not in the run directory.

    >>> p = Path(tempfile.mkdtemp())
    >>> _ = (p / "m.csv").write_text('Patientid,filename,clinical notes\\n7,a.jpg,"COVID-19 pneumonia."\\n')
    >>> pd.read_csv(write_notes_table(p / "m.csv", p / "notes.csv")).loc[0, "text"]
    'pneumonia.'
    """
    meta = _metadata(meta_csv)
    table = pd.DataFrame(
        {
            "report_id": meta["filename"],
            "patient_id": meta["Patientid"],
            "study_id": meta["filename"],
            "text": [mask_label_words(str(t)) for t in meta["clinical notes"].fillna("")],
        }
    )
    table.to_csv(out_csv, index=False)
    return Path(out_csv)


def write_label_table(meta_csv: Path, out_csv: Path) -> Path:
    """The target per picture as a ``medmm align --labels`` table: ``patient`` (raw ``Patientid``),
    ``study`` (the file name, the study id ``ingest --study-column filename`` gave) and :data:`LABEL`
    (1 = COVID-19, 0 = other). It holds raw patient ids: keep it beside the data, not in the run.

    >>> p = Path(tempfile.mkdtemp())
    >>> _ = (p / "m.csv").write_text("Patientid,filename,finding\\n7,a.jpg,COVID-19\\n8,b.png,ARDS\\n")
    >>> pd.read_csv(write_label_table(p / "m.csv", p / "labels.csv"))["covid"].tolist()
    [1, 0]
    """
    meta = _metadata(meta_csv)
    table = pd.DataFrame(
        {
            "patient": meta["Patientid"],
            "study": meta["filename"],
            LABEL: (meta["finding"] == POSITIVE).astype(int),
        }
    )
    table.to_csv(out_csv, index=False)
    return Path(out_csv)


def build_run(data_dir: Path, run_dir: Path, key_file: Path | None = None) -> dict[str, Any]:
    """The standard sequence on ``covid_chestxray_subset``: ingest, reports parse, align with labels.

    Equivalent to the shell commands of ``docs/covid.md`` (in process: ingest with threads, reports
    without Dask). The masked notes and label tables are written to a temporary folder and deleted, so
    ``run_dir`` holds no raw patient id. Re-running resumes (unchanged pictures and reports are skipped).
    Returns the counts of each stage.

    >>> from medmm.datasets import shared_data_dir
    >>> data = shared_data_dir() / "covid_chestxray_subset"  # doctest: +SKIP
    >>> summary = build_run(data, Path("runs/covid"))  # doctest: +SKIP
    """
    from medmm.align.pipeline import align_run
    from medmm.ingest.image_ids import IdColumns, IdTable
    from medmm.ingest.pipeline import ingest_archive
    from medmm.reports.pipeline import parse_reports

    data_dir, run_dir = Path(data_dir), Path(run_dir)
    meta = data_dir / METADATA
    ids = IdTable.load(meta, IdColumns(path="filename", patient="Patientid", study="filename"))
    ing = ingest_archive(
        data_dir / "images",
        run_dir,
        workers=1,
        processes=False,
        key_file=key_file,
        ids=ids,
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        notes = write_notes_table(meta, Path(tmp) / "notes.csv")
        rep = parse_reports(
            notes, run_dir, patient_column="patient_id", study_column="study_id", workers=0, key_file=key_file
        )
        labels = write_label_table(meta, Path(tmp) / "labels.csv")
        counts = align_run(run_dir, labels=labels, key_file=key_file)
    return {"ingest": dict(ing.counts), "reports": dict(rep.counts), "align": counts}


def load_cases(run_dir: Path, meta_csv: Path) -> pd.DataFrame:
    """One row per record of a :func:`build_run` run, with the analysis columns from the metadata.

    Columns: ``record_id``, ``image_id``, ``patient`` (the run's pseudonym), ``y`` (the record's
    :data:`LABEL`), ``file`` (picture file name), ``source_format``, ``height`` / ``width`` (native
    pixels), ``modality`` (from the volume), and from the metadata by file name ``finding``, ``view``,
    ``location`` and ``notes`` (masked). Records in file-name order.
    """
    run_dir = Path(run_dir)
    rec = pd.read_parquet(run_dir / "records.parquet")
    rec = rec[rec["has_image"].astype(bool)]
    vols = pd.read_parquet(run_dir / "volumes.parquet").set_index("volume_id").loc[rec["image_id"]]
    meta = _metadata(meta_csv).set_index("filename")
    files = [Path(str(s[0])).name for s in vols["sources"]]
    m = meta.loc[files]
    shape = np.array([list(s) for s in vols["shape"]])
    cases = pd.DataFrame(
        {
            "record_id": rec["record_id"].to_numpy(),
            "image_id": rec["image_id"].to_numpy(),
            "patient": rec["patient_id"].to_numpy(),
            "y": [int(json.loads(t)[LABEL]) for t in rec["labels"]],
            "file": files,
            "source_format": vols["source_format"].astype(str).to_numpy(),
            # a picture's columns run along x and its rows along y (docs/ingest.md, Picture exports)
            "height": shape[:, 1],
            "width": shape[:, 0],
            "modality": vols["modality"].astype(str).to_numpy(),
            "finding": m["finding"].astype(str).to_numpy(),
            "view": m["view"].astype(str).to_numpy(),
            "location": m["location"].fillna("unknown").astype(str).to_numpy(),
            "notes": [mask_label_words(str(t)) for t in m["clinical notes"].fillna("")],
        }
    )
    return cases.sort_values("file", kind="stable").reset_index(drop=True)


def load_images(run_dir: Path, image_ids: list[str], size: int) -> np.ndarray:
    """The pictures as the models' Dataset reads them: ``[N, 1, size, size]`` float32.

    :class:`medmm.models.volumes.VolumeSource` over ``volumes.parquet`` with ``normalize: zscore`` (over
    all pixels: a picture has no background to leave out, and ``auto`` would window a CT *picture* as
    Hounsfield units) and ``resize: resize`` (MONAI area resize); no cache. The array is in volume layout
    (x = picture column, y = picture row from the bottom), i.e. the picture transposed and flipped.
    """
    from medmm.models.config import ImageInputConfig
    from medmm.models.volumes import VolumeSource

    cfg = ImageInputConfig(source="volumes", size=size, normalize="zscore", cache="none")
    src = VolumeSource(Path(run_dir), cfg, 2, item_ids=list(image_ids))
    if not image_ids:
        return np.zeros((0, 1, size, size), np.float32)
    return np.stack([src.get(i)[0] for i in image_ids]).astype(np.float32)


def report_matrix(run_dir: Path, record_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """The report findings vector ``medmm align`` wrote (``inputs/report``) for these records.

    Columns ``"<finding>=<present|absent|uncertain>"`` over the run's finding vocabulary (the vocabulary
    uses no labels; a column never set in a training fold gets no weight there).
    """
    from medmm.models.encoders.reports import STATUSES
    from medmm.models.store import ArrayStore

    run_dir = Path(run_dir)
    rec = pd.read_parquet(run_dir / "records.parquet").set_index("record_id")
    store = ArrayStore(run_dir / "inputs" / "report")
    vocab = json.loads((run_dir / "inputs" / "report" / "vocabulary.json").read_text())
    x = np.stack([store.get(str(rec.at[r, "report_id"]))[0] for r in record_ids]).astype(np.float64)
    cols = [f"{f}={s}" for f in vocab for s in STATUSES]
    if x.shape[1] != len(cols):  # the layout is align's; name columns only when it is the documented one
        cols = [f"f{j}" for j in range(x.shape[1])]
    return x, cols


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

"""Build the multimodal evaluation cohort from real parts (``python -m bench.cohort OUT_DIR``).

There is no public data set where one patient has a brain MR, a chest X-ray report and an ECG, so this
cohort is *constructed*: each study draws one real item per modality and is labelled abnormal when any
of its items is abnormal. The items and their labels are real; their combination is not.

- **image**: an axial FLAIR slice of a BraTS 2013 patient (``imaging/brats_subset``). Only slices whose
  brain mask covers >= 30% of the patient's largest brain slice are used. *Abnormal* = >= 50 tumour
  voxels (label > 0) in the slice; *normal* = no tumour voxel; slices in between are not used. The
  slice is intensity-normalised over the brain and resized to ``size`` x ``size`` with MONAI.
- **report**: an IU chest X-ray report (``text/iu_xray/indiana_reports_dev.csv``). *Abnormal* =
  ``Problems`` is not ``normal``. The model never sees that column: the report is encoded from its
  *findings + impression text* by :func:`keyword_findings` (a documented keyword/negation encoder over
  :data:`VOCABULARY`) into the same present/absent/uncertain vector the report stage's findings give.
- **signal**: a 4 s window of an MIT-BIH record (lead 0, ``signals/mitdb_subset``, 360 Hz, resampled to
  180 Hz = 720 samples, median-removed mV). *Abnormal* = the window holds a beat annotated ``V``
  (PVC). Beat features: beat count and RR-interval statistics from the reference beat positions.

Leakage control: source *groups* (BraTS patient, MIT-BIH record, IU report) are split into a test pool
and a development pool first; development items are split again into train and validation items.
A study of split ``s`` only draws items from pool ``s``, so no source item (and no BraTS patient or
MIT-BIH record) is shared by train and test. Inside one pool items are drawn without replacement and
re-used only once the pool is exhausted (``cohort.json`` reports unique counts). Cohort patients own
1-3 studies, all in one split.

Outputs: ``records.parquet`` (the align schema), ``inputs/{image,report,signal}/``, ``splits.parquet``
and ``cohort.json`` (sources, counts, seed).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.align.records import RecordRow
from medmm.models.encoders.reports import finding_vector
from medmm.models.store import write_store
from medmm.tables import atomic_write_json, write_table

__all__ = ["VOCABULARY", "build_cohort", "image_items", "keyword_findings", "report_items", "signal_items"]

BRATS_TEST = ("brats_2013_pat0003_1", "brats_2013_pat0004_1")
MITDB_TEST = ("100", "105", "114")
MITDB_ALL = ("100", "102", "104", "105", "108", "114", "116", "121", "123")

#: finding -> regular expression of its mentions (chest radiograph findings).
VOCABULARY: dict[str, str] = {
    "cardiomegaly": r"cardiomegaly|heart (?:size )?(?:is )?(?:mildly |moderately |markedly )?enlarged"
    r"|enlarged heart",
    "effusion": r"effusion",
    "opacity": r"opacit|infiltrat|airspace disease|air space disease",
    "consolidation": r"consolidat|pneumonia",
    "atelectasis": r"atelecta",
    "pneumothorax": r"pneumothora",
    "edema": r"edema|vascular congestion",
    "nodule": r"nodul|mass\b|lesion",
    "granuloma": r"granulom|calcified",
    "emphysema": r"emphysema|hyperinflat|copd|chronic obstructive",
    "scarring": r"scar|fibros|cicatri",
    "degenerative": r"degenerative|spondylo|osteophyt",
    "fracture": r"fractur",
    "hernia": r"hernia",
    "tortuous_aorta": r"tortuous|ectatic|aortic (?:calcification|atherosclero)|atherosclero",
    "device": r"catheter|pacemaker|\btube\b|sternotomy|clips|hardware|stent|port",
    "thickening": r"thickening",
    "hyperexpansion": r"hyperexpan|flatten",
    "deformity": r"deformit|scoliosis|kyphosis",
    "normal": r"\bnormal\b|within normal limits|no acute|clear lungs|lungs are clear",
}
_NEGATION = re.compile(r"\b(no|not|without|negative for|free of|resolved|clear of|absence of)\b")
_UNCERTAIN = re.compile(
    r"\b(may|possibl\w*|probabl\w*|likely|suspect\w*|questionabl\w*|cannot be excluded|"
    r"could|suggest\w*|borderline|versus|vs)\b"
)


def keyword_findings(text: str) -> list[tuple[str, str]]:
    """``(finding, status)`` pairs found in ``text``: status ``absent`` when a negation cue precedes the
    mention in its sentence, ``uncertain`` with a hedging cue, else ``present``.

    >>> keyword_findings("No pleural effusion. Mild cardiomegaly. Possible nodule.")
    [('effusion', 'absent'), ('cardiomegaly', 'present'), ('nodule', 'uncertain')]
    """
    out: list[tuple[str, str]] = []
    for sentence in re.split(r"(?<=[.;])\s+|\n", text.lower()):
        for finding, pattern in VOCABULARY.items():
            m = re.search(pattern, sentence)
            if not m:
                continue
            before = sentence[: m.start()]
            status = (
                "absent"
                if _NEGATION.search(before)
                else "uncertain"
                if _UNCERTAIN.search(sentence)
                else "present"
            )
            out.append((finding, status))
    return out


def image_items(root: Path, size: int) -> pd.DataFrame:
    """One row per usable FLAIR slice: ``item_id``, ``group`` (BraTS patient), ``abnormal``, ``x``."""
    import nibabel as nib
    from monai.transforms import Compose, NormalizeIntensity, Resize

    # slices as channels: one MONAI call per patient, each slice normalised over its own brain voxels
    tf = Compose([NormalizeIntensity(nonzero=True, channel_wise=True), Resize((size, size), mode="area")])
    rows = []
    for case in sorted(p for p in (root / "imaging" / "brats_subset").glob("*/*") if p.is_dir()):
        flair = np.asarray(nib.load(case / "Flair_subtrMeanDivStd.nii.gz").get_fdata(), np.float32)
        labels = np.asarray(nib.load(case / "OTMultiClass.nii.gz").get_fdata())
        brain = np.asarray(nib.load(case / "brainmask.nii.gz").get_fdata()) > 0
        area = brain.sum(axis=(0, 1))
        tumour = (labels > 0).sum(axis=(0, 1))
        zs = [z for z in np.flatnonzero(area >= 0.3 * area.max()) if not 0 < tumour[z] < 50]
        stack = np.stack([np.where(brain[:, :, z], flair[:, :, z], 0.0) for z in zs]).astype(np.float32)
        out = np.asarray(tf(stack), np.float32)
        for k, z in enumerate(zs):
            rows.append(
                {
                    "item_id": f"{case.name}/z{z:03d}",
                    "group": case.name,
                    "abnormal": bool(tumour[z] >= 50),
                    "x": out[k : k + 1],
                }
            )
    return pd.DataFrame(rows)


def report_items(root: Path, reports_run: Path | None = None) -> pd.DataFrame:
    """One row per IU report with text: ``item_id``, ``group`` (= report), ``abnormal``, ``x`` (vector).

    With ``reports_run`` (a ``medmm reports parse`` run over the same CSV, text columns findings +
    impression) the vector is the report stage's findings (``report_labels.parquet``) over its finding
    vocabulary; otherwise the keyword encoder :func:`keyword_findings` over :data:`VOCABULARY`.
    """
    df = pd.read_csv(root / "text" / "iu_xray" / "indiana_reports_dev.csv")
    stage: dict[str, list[tuple[str, str]]] | None = None
    vocab = list(VOCABULARY)
    if reports_run is not None:
        labels = pd.read_parquet(Path(reports_run) / "report_labels.parquet")
        man = pd.read_parquet(Path(reports_run) / "manifest_reports.parquet")
        # manifest path is "<file>#<1-based data row>"; map the stage's report id back to that row's uid
        uids = df["uid"].astype(str).tolist()
        uid_of = {
            str(rid): uids[int(str(p).rsplit("#", 1)[-1]) - 1]
            for p, rid in zip(man["path"], man["report_id"], strict=True)
        }
        vocab = sorted(labels["finding"].unique())
        stage = {}
        for rid, grp in labels.groupby("report_id"):
            pairs = [(str(f), str(st)) for f, st in zip(grp["finding"], grp["status"], strict=True)]
            stage[uid_of.get(str(rid), str(rid))] = pairs
    rows = []
    for r in df.itertuples():
        text = " ".join(str(t) for t in (r.findings, r.impression) if isinstance(t, str))
        if not text.strip() or (stage is not None and str(r.uid) not in stage):
            continue
        pairs = stage[str(r.uid)] if stage is not None else keyword_findings(text)
        rows.append(
            {
                "item_id": f"iu{r.uid}",
                "group": f"iu{r.uid}",
                "abnormal": r.Problems != "normal",
                "x": finding_vector(pairs, vocab),
            }
        )
    return pd.DataFrame(rows)


def signal_items(root: Path, seconds: float = 4.0) -> pd.DataFrame:
    """Non-overlapping windows of every MIT-BIH record: ``x`` ``[1, 720]``, ``features`` ``[5]``."""
    import wfdb

    rows = []
    for rec in MITDB_ALL:
        path = str(root / "signals" / "mitdb_subset" / rec)
        sig = wfdb.rdrecord(path, channels=[0]).p_signal[:, 0].astype(np.float32)
        ann = wfdb.rdann(path, "atr")
        fs = 360
        n = int(seconds * fs)
        samples, symbols = np.asarray(ann.sample), np.asarray(ann.symbol)
        for w in range(len(sig) // n):
            lo, hi = w * n, (w + 1) * n
            seg = sig[lo:hi:2]
            seg = np.clip(seg - np.median(seg), -5, 5)[None]
            inside = (samples >= lo) & (samples < hi)
            beats = samples[inside]
            rr = np.diff(beats) / fs if len(beats) > 1 else np.array([1.0])
            feats = np.array(
                [len(beats) / 10, rr.mean(), rr.std(), rr.min() / rr.mean(), rr.max() / rr.mean()], np.float32
            )
            rows.append(
                {
                    "item_id": f"mitdb{rec}/w{w:03d}",
                    "group": rec,
                    "abnormal": bool((symbols[inside] == "V").any()),
                    "x": seg.astype(np.float32),
                    "features": feats,
                }
            )
    return pd.DataFrame(rows)


def _pools(
    items: pd.DataFrame,
    test_groups: Sequence[str] | None,
    rng: np.random.Generator,
    test_frac: float = 0.25,
    val_frac: float = 0.2,
) -> dict[str, pd.DataFrame]:
    groups = np.array(sorted(items["group"].unique()))
    if test_groups is None:
        rng.shuffle(groups)
        test_groups = groups[: round(test_frac * len(groups))].tolist()
    is_test = items["group"].isin(list(test_groups)).to_numpy()
    dev = items[~is_test]
    val_mask = rng.random(len(dev)) < val_frac
    return {"train": dev[~val_mask], "val": dev[val_mask], "test": items[is_test]}


class _Sampler:
    """Draw items of one (split, modality, abnormal) pool without replacement, cycling when exhausted."""

    def __init__(self, ids: Sequence[str], rng: np.random.Generator) -> None:
        if not len(ids):
            raise ValueError("empty item pool")
        self.ids, self.rng, self.queue = list(ids), rng, []  # type: ignore[var-annotated]

    def draw(self) -> str:
        if not self.queue:
            self.queue = list(self.rng.permutation(self.ids))
        return str(self.queue.pop())


def build_cohort(
    data_root: Path,
    out: Path,
    n_studies: int = 600,
    size: int = 64,
    p_abnormal: float = 0.3,
    seed: int = 0,
    reports_run: Path | None = None,
) -> dict[str, Any]:
    """Write the cohort run directory ``out``; returns the ``cohort.json`` summary."""
    rng = np.random.default_rng(seed)
    items = {
        "image": image_items(data_root, size),
        "report": report_items(data_root, reports_run),
        "signal": signal_items(data_root),
    }
    pools = {
        "image": _pools(items["image"], BRATS_TEST, rng),
        "report": _pools(items["report"], None, rng),
        "signal": _pools(items["signal"], MITDB_TEST, rng),
    }
    samplers = {
        (s, m, a): _Sampler(p[p["abnormal"] == a]["item_id"].tolist(), rng)
        for m, ps in pools.items()
        for s, p in ps.items()
        for a in (False, True)
    }
    n_split = {"test": round(0.25 * n_studies), "val": round(0.15 * n_studies)}
    n_split["train"] = n_studies - n_split["test"] - n_split["val"]
    rows, split_rows, used = [], [], {m: {s: set() for s in n_split} for m in items}  # type: ignore[var-annotated]
    k = 0
    for split, n in n_split.items():
        made = 0
        while made < n:
            patient = f"pat-{split}-{k:04d}"
            for _ in range(min(int(rng.integers(1, 4)), n - made)):
                flags = rng.random(3) < p_abnormal
                ids = {m: samplers[(split, m, bool(f))].draw() for m, f in zip(items, flags, strict=True)}
                for m, i in ids.items():
                    used[m][split].add(i)
                labels = {
                    "abnormal": int(flags.any()),
                    **{f"{m}_abnormal": int(f) for m, f in zip(items, flags, strict=True)},
                }
                rec = f"rec-{split}-{made:04d}"
                rows.append(
                    RecordRow(
                        record_id=rec,
                        patient_id=patient,
                        study_id=f"stu-{split}-{made:04d}",
                        study_time=f"2020-01-{1 + made % 28:02d}T09:00:00",
                        image_id=ids["image"],
                        report_id=ids["report"],
                        signal_id=ids["signal"],
                        has_image=True,
                        has_report=True,
                        has_signal=True,
                        labels=json.dumps(labels),
                    )
                )
                split_rows.append({"record_id": rec, "patient_id": patient, "split": split, "fold": 0})
                made += 1
            k += 1
    out.mkdir(parents=True, exist_ok=True)
    for m, df in items.items():
        feats = np.stack(df["features"].to_list()) if "features" in df else None
        write_store(out / "inputs" / m, df["item_id"].tolist(), np.stack(df["x"].to_list()), feats)
    write_table(rows, out / "records.parquet", RecordRow)
    write_table(pd.DataFrame(split_rows), out / "splits.parquet")
    summary = {
        "seed": seed,
        "report_encoding": "medmm reports findings" if reports_run is not None else "keyword encoder",
        "n_studies": n_studies,
        "image_size": size,
        "p_abnormal_per_modality": p_abnormal,
        "studies_per_split": n_split,
        "abnormal_rate": float(np.mean([json.loads(r.labels)["abnormal"] for r in rows])),
        "source_items": {
            m: {"total": len(df), "abnormal": int(df["abnormal"].sum())} for m, df in items.items()
        },
        "pool_groups": {
            m: {
                s: sorted(p["group"].unique().tolist())[:10] + (["..."] if p["group"].nunique() > 10 else [])
                for s, p in ps.items()
            }
            for m, ps in pools.items()
        },
        "unique_items_used": {m: {s: len(v) for s, v in u.items()} for m, u in used.items()},
        "train_test_shared_items": {m: len(u["train"] & u["test"]) for m, u in used.items()},
    }
    atomic_write_json(out / "cohort.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="shared data root (default: medmm.datasets)")
    parser.add_argument("--studies", type=int, default=600)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reports-run",
        type=Path,
        default=None,
        help="run of `medmm reports parse` over the IU CSV: use its findings instead of the keyword encoder",
    )
    args = parser.parse_args(argv)
    from medmm.datasets import shared_data_dir

    root = args.data or shared_data_dir()
    if root is None:
        raise SystemExit("shared data not found: pass --data or set MEDMM_DATA")
    print(
        json.dumps(
            build_cohort(
                root, args.out, args.studies, args.size, seed=args.seed, reports_run=args.reports_run
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""``medmm predict --anomaly-calibration CAL_RUN_DIR``: the imaging anomaly threshold calibrated on a
site's own normal studies instead of the training-time validation images.

``CAL_RUN_DIR`` is an aligned run (``medmm align``) holding only studies the site declares normal
(e.g. a month of reported-normal examinations of the scanner to be screened, not overlapping the
records to score). Every record of it with an image is a calibration unit, one per distinct image; the
threshold is the conformal quantile of their scores at the rate (the checkpoint's or
``--anomaly-rate``), with the same promise and warning as the checkpoint's
(:meth:`~medmm.models.mahalanobis.EmbeddingAnomaly.calibration_note`). The density is the checkpoint's:
only the threshold changes.

>>> scored = pd.DataFrame({"record_id": ["r1", "r2"], "image_id": ["i1", "i2"]})
>>> cal = pd.DataFrame({"record_id": ["c1", "c2"], "image_id": ["i2", "i3"]})
>>> overlapping(scored, cal)
1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medmm.errors import InputError
from medmm.models.embedding_anomaly import (
    IMAGE,
    EmbeddingAnomaly,
    calibrate_on_records,
    calibration_set_id,
    site_calibration_images,
)
from medmm.models.run_inputs import open_checkpoint_inputs
from medmm.models.runner import _record_columns, read_run_table

__all__ = ["CHECKPOINT", "overlapping", "site_calibrated"]

#: ``embedding_anomaly_calibration`` of a threshold taken from the checkpoint's own calibration scores.
CHECKPOINT = "checkpoint"


def overlapping(scored: pd.DataFrame, calibration: pd.DataFrame) -> int:
    """How many records of ``scored`` are also in ``calibration``: the same record id, or the same image.

    >>> overlapping(pd.DataFrame({"record_id": ["a"], "image_id": [None]}),
    ...             pd.DataFrame({"record_id": ["b"], "image_id": [None]}))
    0
    """
    images = set(calibration[f"{IMAGE}_id"].dropna().astype(str))
    same_record = scored["record_id"].astype(str).isin(set(calibration["record_id"].astype(str)))
    same_image = scored[f"{IMAGE}_id"].astype("string").isin(images).fillna(False).to_numpy(bool)
    return int((same_record.to_numpy(bool) | same_image).sum())


def site_calibrated(
    anomaly: EmbeddingAnomaly,
    cal_dir: Path,
    scored: pd.DataFrame,
    *,
    model: Any,
    config: Any,
    meta: dict[str, Any],
    checkpoint: Path,
    rate: float | None,
    batch_size: int,
    device: torch.device,
) -> tuple[EmbeddingAnomaly, str]:
    """``anomaly`` with its threshold calibrated on the run ``cal_dir`` (its records with an image, one
    per distinct image), and the calibration set's name (:func:`calibration_set_id`).

    Refused with an :class:`~medmm.errors.InputError` naming the file, the problem and the fix: no
    records table, no record with an image, images the model was not trained on (another shape),
    records also among ``scored`` (a record cannot calibrate its own threshold), or no image with a
    finite score (arrays of NaN). Images whose score is not finite are left out of the calibration.
    """
    cal_dir = Path(cal_dir)
    path = cal_dir / "records.parquet"
    records = read_run_table(
        path,
        _record_columns(),
        "pass as --anomaly-calibration a run directory of normal studies aligned with `medmm align`",
    )
    cal = site_calibration_images(records)
    if cal.empty:
        raise InputError(
            str(path),
            f"none of its {len(records)} record(s) has an image, so it cannot calibrate the imaging anomaly "
            "threshold",
            "align the site's normal imaging studies (`medmm align` after `medmm ingest`) and pass that run",
        )
    n_overlap = overlapping(scored, records)
    if n_overlap:
        raise InputError(
            str(path),
            f"{n_overlap} of the {len(scored)} record(s) to score are also in the calibration run (the same "
            "record or image): a record cannot calibrate its own threshold",
            "calibrate on normal studies that are not scored (another period or another run), or score "
            "only the records not in the calibration run",
        )
    mods: list[str] = meta["modalities"]
    # only the image is read: the score depends on it alone, so the other modalities are opened absent
    image_only = cal.assign(**{f"has_{m}": False for m in mods if m != IMAGE})
    stores = open_checkpoint_inputs(config, meta, cal_dir, image_only, checkpoint, report_inputs=False)
    try:
        fitted = calibrate_on_records(
            anomaly, model, image_only, stores, rate=rate, batch_size=batch_size, device=device
        )
    except ValueError as exc:  # no finite score: every image's representation is NaN or infinite
        raise InputError(
            str(cal_dir / "inputs" / IMAGE),
            f"none of its {len(cal)} image(s) has a finite anomaly score ({exc}): their arrays hold "
            "NaN or infinite values",
            "check the normal studies' images and re-run `medmm align` on them",
        ) from None
    return fitted, calibration_set_id([str(i) for i in cal[f"{IMAGE}_id"]])

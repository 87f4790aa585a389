"""Imaging-branch benchmark: epoch time of the Dataset over real BraTS volumes with the MONAI chain
uncached (the baseline: every epoch reads and transforms every NIfTI) vs the in-memory ``CacheDataset``
and the on-disk ``PersistentDataset`` (cold: first run fills it; warm: a later run reuses it).

Each row: time to open the source (the memory cache transforms everything there), epoch 1 and epoch 2
(wall and CPU seconds; CPU = this process, robust to other load), and how many NIfTI files the reader
opened. Run: ``flock /tmp/medmm-bench.lock python -m bench image_inputs [--quick]``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from medmm.datasets import shared_data_dir
from medmm.models.config import ImageInputConfig
from medmm.models.data import MultimodalDataset, collate_records
from medmm.models.volumes import VolumeSource


def _run_dir(root: Path, volumes: list[Path]) -> tuple[Path, pd.DataFrame]:
    """A run folder linking (not copying) ``volumes``, and one image-only record per volume."""
    (root / "vol").mkdir(parents=True)
    rows = []
    for i, src in enumerate(volumes):
        (root / "vol" / f"v{i}.nii.gz").symlink_to(src)
        rows.append({"volume_id": f"v{i}", "path": f"vol/v{i}.nii.gz", "modality": "MR"})
    pd.DataFrame(rows).to_parquet(root / "volumes.parquet")
    records = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(len(rows))],
            "patient_id": [f"p{i}" for i in range(len(rows))],
            "image_id": [r["volume_id"] for r in rows],
            "has_image": True,
            "labels": "{}",
        }
    )
    return root, records


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _epoch(ds: MultimodalDataset) -> int:
    n = 0
    for batch in DataLoader(ds, batch_size=8, num_workers=0, collate_fn=collate_records):
        n += len(batch.record_ids)
    return n


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Measure uncached / memory / disk-cold / disk-warm epochs; returns the table as a dict."""
    from monai.data import NibabelReader

    data = shared_data_dir()
    if data is None:
        raise RuntimeError("real data not found: set MEDMM_DATA (needs imaging/brats_subset)")
    files = sorted((data / "imaging" / "brats_subset").glob("*/*/*_subtrMeanDivStd.nii.gz"))
    files = files[:2] if quick else files
    reads: list[str] = []
    original = NibabelReader.read

    def counting(self: NibabelReader, d: Any, **kw: Any) -> Any:
        reads.append(str(d))
        return original(self, d, **kw)

    setattr(NibabelReader, "read", counting)  # noqa: B010 (count reads in this process)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir, records = _run_dir(Path(tmp) / "run", files)
            for dims, size in ((2, 64), (3, 64)):
                for label, cache in (
                    ("uncached", "none"),
                    ("memory", "memory"),
                    ("disk cold", "disk"),
                    ("disk warm", "disk"),
                ):
                    cfg = ImageInputConfig(size=size, slice="largest_foreground", cache=cache)
                    reads.clear()
                    src, ow, oc = _timed(partial(VolumeSource, run_dir, cfg, dims))
                    ds = MultimodalDataset(records, {"image": src}, [])
                    _, w1, c1 = _timed(partial(_epoch, ds))
                    _, w2, c2 = _timed(partial(_epoch, ds))
                    rows.append(
                        {
                            "dims": f"{dims}D",
                            "cache": label,
                            "volumes": len(files),
                            "open_s": round(ow, 4),
                            "epoch1_s": round(w1, 4),
                            "epoch2_s": round(w2, 4),
                            "open_cpu_s": round(oc, 4),
                            "epoch1_cpu_s": round(c1, 4),
                            "epoch2_cpu_s": round(c2, 4),
                            "nifti_reads": len(reads),
                        }
                    )
    finally:
        setattr(NibabelReader, "read", original)  # noqa: B010
    table = pd.DataFrame(rows)
    for _dims, grp in table.groupby("dims"):
        base = float(grp.loc[grp["cache"] == "uncached", "epoch2_cpu_s"].iloc[0])
        table.loc[grp.index, "epoch2_speedup_vs_uncached"] = [
            round(base / max(c, 1e-4), 1) for c in grp["epoch2_cpu_s"]
        ]
    cols = list(table.columns)
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for rec in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in rec) + " |")
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return {"rows": table.to_dict(orient="records"), "load_average": load, "baseline": "uncached"}

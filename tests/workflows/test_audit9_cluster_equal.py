"""A data team's `medmm run WORKFLOW --scheduler ADDRESS` on an existing cluster (``dask scheduler`` and
``dask worker`` processes in another folder, without any MEDMM_* variable) gives the same run directory
as the local run - every table frame-equal, every volume and window array byte-equal - for all four
stages of the screening workflow, even when a worker process dies in its first ingest and its first
signals task (the nanny restarts it; Dask runs the task again)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from test_external_cluster import KillOnce, make_inputs, plugin, start_cluster
from typer.testing import CliRunner

from medmm.cli import app

#: files that differ by design: run.json (timings, options), the lock (pid), saved per-record results
#: (they hold their own absolute path) and the ingest state (the archive path)
_OWN = {"run.json", ".medmm-run.lock"}


def _files(run: Path) -> dict[str, Path]:
    return {
        p.relative_to(run).as_posix(): p
        for p in run.rglob("*")
        if p.is_file() and p.name not in _OWN and ".signals_parts" not in p.parts
    }


def test_cluster_run_equals_the_local_run_with_a_worker_killed(tmp_path: Path) -> None:
    from medmm.anomaly.stage import train_on_run
    from medmm.signals.pipeline import run_signals

    base = make_inputs(tmp_path)
    (base / "site.key").write_text("7e" * 32 + "\n")
    (base / "site.key").chmod(0o600)
    # a beat model trained once, as a site would (`medmm anomaly train`), used by both runs
    run_signals(base / "ecg", tmp_path / "train", workers=0, key_file=base / "site.key")
    train_on_run(tmp_path / "train", base / "model", epochs=1, ensemble=1)
    wf = base / "w.yaml"
    wf.write_text(
        "name: screening\nrun_dir: local\nkey_file: site.key\ncluster: {workers: 1}\nstages:\n"
        "  - {stage: ingest, input: archive}\n  - {stage: signals, input: ecg}\n"
        "  - {stage: anomaly, options: {model: model}}\n  - {stage: align}\n"
    )
    local = CliRunner().invoke(app, ["run", str(wf)])
    assert local.exit_code == 0, local.output

    marks = tmp_path / "killed"
    with (
        start_cluster(tmp_path / "cluster", nworkers=2) as cluster,
        plugin(cluster, KillOnce(("scan_item", "process_resumable"), marks)),
    ):
        remote_out = base / "remote"
        remote = CliRunner().invoke(
            app, ["run", str(wf), "--out", str(remote_out), "--scheduler", cluster.address]
        )
    assert remote.exit_code == 0, remote.output
    assert sorted(p.name for p in marks.iterdir()) == ["process_resumable", "scan_item"]

    mine, theirs = _files(base / "local"), _files(remote_out)
    assert sorted(mine) == sorted(theirs)
    assert {"anomalies.parquet", "window_anomalies.parquet", "records.parquet", "beats.parquet"} <= set(mine)
    for rel, path in mine.items():
        if path.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(theirs[rel]), obj=rel)
        elif path.suffix == ".npy" and path.read_bytes() != theirs[rel].read_bytes():
            np.testing.assert_array_equal(np.load(path), np.load(theirs[rel]), err_msg=rel)
        elif path.suffix != ".npy":
            assert path.read_bytes() == theirs[rel].read_bytes(), rel
    summary = remote.stdout.strip().splitlines()[-1]
    assert summary.startswith("medmm run screening: OK exit=0 | ingest: 6 files (6 processed now)")

"""A data team's `medmm run WORKFLOW --scheduler ADDRESS` on an existing cluster (``dask scheduler`` and
``dask worker`` processes in another folder, without any MEDMM_* variable) gives the same run directory
as the local run - every table frame-equal, every volume and window array byte-equal - for all four
stages of the screening workflow, even when a worker process dies in its first signals task (the nanny
restarts it; Dask runs the task again). The local run calls the stages' functions in this process, as
the workflow's adapters do (each stage of a local `medmm run` would start a cluster of its own)."""

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
    from medmm.align.pipeline import align_run
    from medmm.anomaly.stage import score_run, train_on_run
    from medmm.ingest.pipeline import ingest_archive
    from medmm.signals.pipeline import run_signals

    base = make_inputs(tmp_path)
    key = base / "site.key"
    key.write_text("7e" * 32 + "\n")
    key.chmod(0o600)
    # the local run: the functions the workflow's stages call, in this process (no local cluster to start)
    local = base / "local"
    ingest_archive(base / "archive", local, workers=1, processes=False, key_file=key)
    run_signals(base / "ecg", local, workers=0, key_file=key)
    train_on_run(local, base / "model", epochs=1, ensemble=1)  # a site's beat model, trained once
    score_run(local, base / "model", local)
    align_run(local, key_file=key)

    wf = base / "w.yaml"
    wf.write_text(
        "name: screening\nrun_dir: remote\nkey_file: site.key\nstages:\n"
        "  - {stage: ingest, input: archive}\n  - {stage: signals, input: ecg}\n"
        "  - {stage: anomaly, options: {model: model}}\n  - {stage: align}\n"
    )
    marks = tmp_path / "killed"
    with (
        start_cluster(tmp_path / "cluster", nworkers=2) as cluster,
        plugin(cluster, KillOnce(("process_resumable",), marks)),
    ):
        remote = CliRunner().invoke(app, ["run", str(wf), "--scheduler", cluster.address])
    assert remote.exit_code == 0, remote.output
    assert [p.name for p in marks.iterdir()] == ["process_resumable"]  # a worker died in a signals task

    mine, theirs = _files(local), _files(base / "remote")
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

"""`medmm run` as an unattended nightly job: one run at a time per run directory (a killed holder never
blocks the next night), SIGTERM (a scheduler's time limit) stops it cleanly, and the last stdout line
plus run.json's `workflow` section tell a cron mail / monitoring check what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pydicom.data
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.ingest.sample import DEMO_PATIENT, replicate_series

CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))


def _workflow(base: Path, stages: str) -> Path:
    (base / "site.key").write_text("cd" * 32 + "\n")
    (base / "site.key").chmod(0o600)
    path = base / "w.yaml"
    path.write_text(
        "name: nightly\nrun_dir: run\nkey_file: site.key\ncluster: {workers: 1}\nstrict: true\n"
        f"stages:\n{stages}"
    )
    return path


def _status(run: Path) -> dict[str, object]:
    section: dict[str, object] = json.loads((run / "run.json").read_text())["stages"]["workflow"]
    return section


def test_a_second_run_is_refused_and_a_killed_holder_blocks_nothing(tmp_path: Path) -> None:
    """Two runs on one run directory (last night's still busy, or one started by hand beside cron): the
    later is refused at once, naming the holder, and runs no stage; once the holder is killed (-9: no
    clean-up of its own), the next run goes ahead without anyone removing a lock file."""
    (tmp_path / "pacs").mkdir()
    wf = _workflow(tmp_path, "  - {stage: ingest, input: pacs}\n")
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom medmm.workflows.lock import workflow_lock\n"
         f"with workflow_lock({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = CliRunner().invoke(app, ["run", str(wf)])
        assert refused.exit_code == 2, refused.output
        assert "another `medmm run` is working on this run directory" in refused.output
        assert f"process {holder.pid}" in refused.output
        assert not (run / "manifest.parquet").exists() and not (run / "run.json").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    done = CliRunner().invoke(app, ["run", str(wf)])
    assert done.exit_code == 0, done.output
    assert (run / "manifest.parquet").exists() and _status(run)["status"] == "ok"


_SLOW_STAGE = """
import sys, time
import medmm.workflows.run as run
from medmm.workflows.config import StageName

def slow(step, ctx):  # a stage busy in its tasks; its clean-up must run when the run is stopped
    try:
        (ctx.run_dir / "started").touch()
        time.sleep(120)
    finally:
        (ctx.run_dir / "cleaned-up").touch()
    return {}

run._STAGES[StageName.align] = slow
from medmm.cli import app
app(["run", sys.argv[1]])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_sigterm_stops_the_run_cleanly_and_says_so(tmp_path: Path, signum: int) -> None:
    """A scheduler's time limit (`timeout`, systemd, SLURM) sends SIGTERM; closing the ssh session of a run
    started by hand sends SIGHUP: the stage's clean-up code runs (Python's default would end the process
    at once, leaving e.g. ingest's header records with raw DICOM ids under .parts/), the exit code is
    128 + the signal, the last stdout line and run.json say where it stopped, and the next run is not
    blocked."""
    (tmp_path / "pacs").mkdir()
    wf = _workflow(tmp_path, "  - {stage: ingest, input: pacs}\n  - {stage: align}\n")
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_STAGE, str(wf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    code = 128 + signum
    assert proc.returncode == code, out + err
    assert (run / "cleaned-up").exists()
    assert f"stopped by {signal.Signals(signum).name} in stage 'align'" in err and "Traceback" not in err
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"medmm run nightly: TERMINATED exit={code} | ingest: 0 files (0 processed now)")
    assert "stopped in stage align" in last and last.endswith(f"results: {run}")
    status = _status(run)
    assert (
        status["status"] == "terminated" and status["stopped_in"] == "align" and status["exit_code"] == code
    )
    (run / "started").unlink()
    again = CliRunner().invoke(app, ["run", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "run2")])
    assert again.exit_code == 0, again.output


def test_two_nights_summary_line_and_run_status(
    tmp_path: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    """Night 1: a series with 2 of its slices (quarantined: too few) and a text file; night 2: its third
    slice arrives and the text file is renamed. The last stdout line says each night's outcome, counts
    and where the results are; run.json's workflow section agrees; every input is in the manifest once,
    the completed series is one volume; no patient identity in the run, its line or its log."""
    pacs = tmp_path / "pacs"
    slices = replicate_series([CT], tmp_path / "export", 3, seed=4, identity=DEMO_PATIENT)
    pacs.mkdir()
    for s in slices[:2]:
        os.link(s, pacs / s.name)
    (pacs / "notes.txt").write_text("see the requisition\n")
    wf = _workflow(tmp_path, "  - {stage: ingest, input: pacs}\n")
    run = tmp_path / "run"

    night1 = CliRunner().invoke(app, ["run", str(wf)])
    assert night1.exit_code == 1, night1.output
    line1 = night1.stdout.strip().splitlines()[-1]
    ingest1 = "ingest: 3 files (3 processed now), 2 quarantined (2 new)"
    assert line1 == f"medmm run nightly: QUARANTINED exit=1 | {ingest1} | results: {run}"
    assert _status(run)["status"] == "quarantined" and _status(run)["summary"] == line1

    os.link(slices[2], pacs / slices[2].name)
    (pacs / "notes.txt").rename(pacs / "readme.txt")
    night2 = CliRunner().invoke(app, ["run", str(wf)])
    assert night2.exit_code == 0, night2.output
    line2 = night2.stdout.strip().splitlines()[-1]
    # the two slices of night 1 are assembled again with their series' new slice; the text file is new
    ingest2 = "ingest: 4 files (4 processed now), 0 quarantined (0 new)"
    assert line2 == f"medmm run nightly: OK exit=0 | {ingest2} | results: {run}"
    assert _status(run)["status"] == "ok" and _status(run)["exit_code"] == 0
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert sorted(manifest["path"]) == sorted(p.name for p in pacs.iterdir())
    assert manifest.set_index("path").loc["readme.txt", "status"] == "non_image"
    volumes = pd.read_parquet(run / "volumes.parquet")
    assert len(volumes) == 1 and volumes["n_sources"].tolist() == [3]

    # night 3 a broken file arrives; night 4 it is still there: quarantined again, but not new
    (pacs / "broken.dcm").write_bytes(b"")
    for night, new in ((3, 1), (4, 0)):
        res = CliRunner().invoke(app, ["run", str(wf)])
        assert res.exit_code == 1, res.output
        assert "2 quarantined" not in res.stdout and f"1 quarantined ({new} new)" in res.stdout, night
        assert _status(run)["stage_counts"]["ingest"]["quarantined_new"] == new  # type: ignore[index]

    identity = [DEMO_PATIENT["PatientName"], DEMO_PATIENT["PatientID"], "DEMO^SYNTHETIC", "19700101"]
    assert not strings_in_run(run, identity)
    assert not [s for s in identity if s in night1.output + night2.output]


_SLOW_COMMAND = """
import sys, time
from pathlib import Path
import medmm.ingest.pipeline, medmm.signals.pipeline

def slow(source, out, **kwargs):  # busy in its tasks; its clean-up must run when the command is stopped
    try:
        (Path(out) / "started").touch()
        time.sleep(120)
    finally:
        (Path(out) / "cleaned-up").touch()

medmm.ingest.pipeline.ingest_archive = medmm.signals.pipeline.run_signals = slow
from medmm.cli import app
app(sys.argv[1:])
"""


@pytest.mark.parametrize("command", [["ingest"], ["signals", "ingest"]], ids=" ".join)
def test_sigterm_stops_a_stage_command_cleanly(tmp_path: Path, command: list[str]) -> None:
    """`medmm ingest` / `medmm signals ingest` straight from cron: SIGTERM runs the clean-up too."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x\n")
    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-c", _SLOW_COMMAND, *command, str(tmp_path / "in"), "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert (out / "cleaned-up").exists() and "stopped by SIGTERM" in stderr

"""medmm on an existing Dask cluster whose workers are other processes, started as SLURM or Kubernetes
would start them: ``dask scheduler`` and ``dask worker ADDRESS --nworkers 2 --nthreads 1`` as
subprocesses, in another working folder, without any ``MEDMM_*`` variable, without medmm's forkserver
or preload. The stages get ``--scheduler ADDRESS`` and run unchanged (docs/cluster.md, "Quick check").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import pandas as pd
import pytest
import yaml
from distributed import Client, WorkerPlugin
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.workflows.cluster import dask_client
from medmm.workflows.external import ClusterError, check_paths, check_versions
from medmm.workflows.worker_key import WorkerKey, check_key, worker_key

# the plugins and task functions below go to the workers by value: they cannot import this module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0


@dataclass
class Cluster:
    """A scheduler and a ``dask worker`` process (with its nannies and workers), in their own folder."""

    address: str
    cwd: Path
    scheduler: subprocess.Popen[bytes]
    workers: subprocess.Popen[bytes]


@contextlib.contextmanager
def start_cluster(
    base: Path, nworkers: int = 2, preload: Path | None = None, user: str | None = None
) -> Iterator[Cluster]:
    """``dask scheduler`` + ``dask worker ADDRESS --nworkers N --nthreads 1`` in ``base/workers``, with
    no ``MEDMM_*`` variable (the workers as ``user`` when given: then in a folder of their own under
    the system's temporary folder); both process groups are killed on leaving."""
    cwd = base / "workers"
    if user:
        cwd = Path(tempfile.mkdtemp(prefix="medmm-test-workers-"))
        cwd.chmod(0o777)
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDMM_")}
    as_user: list[str] = []
    if user:
        import pwd

        account = pwd.getpwnam(user)
        as_user = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    log = (base / "cluster.log").open("ab")
    info = base / "scheduler.json"
    common: dict[str, Any] = {"cwd": cwd, "env": env, "stdout": log, "stderr": subprocess.STDOUT}
    scheduler = subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
         "--scheduler-file", info],
        start_new_session=True, **common,
    )  # fmt: skip
    procs = [scheduler]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info.exists() or not info.read_text().strip():
            assert scheduler.poll() is None and time.monotonic() < deadline, (
                base / "cluster.log"
            ).read_text()
            time.sleep(0.05)
        address = json.loads(info.read_text())["address"]
        extra = ["--preload", str(preload)] if preload else []
        if user:  # one worker without a nanny: a nanny's spawned worker dies under setpriv (broken pipe)
            extra += ["--no-nanny"]
        if not nworkers:  # a scheduler alone
            yield Cluster(address, cwd, scheduler, scheduler)
            return
        workers = subprocess.Popen(
            [*as_user, BIN / "dask", "worker", address, *([] if user else ["--nworkers", str(nworkers)]),
             "--nthreads", "1", "--no-dashboard", "--local-directory", str(cwd), *extra],
            start_new_session=True, **common,
        )  # fmt: skip
        procs.append(workers)
        with Client(address, timeout=START_TIMEOUT_S) as client:
            while len(client.nthreads()) < nworkers:  # a worker command that fails: at once, with its log
                assert workers.poll() is None and time.monotonic() < deadline, (
                    base / "cluster.log"
                ).read_text()
                time.sleep(0.1)
        yield Cluster(address, cwd, scheduler, workers)
    finally:
        for proc in reversed(procs):  # each started in its own session: its group is it and its children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
        if user:
            shutil.rmtree(cwd, ignore_errors=True)


@contextlib.contextmanager
def plugin(cluster: Cluster, worker_plugin: WorkerPlugin) -> Iterator[None]:
    """``worker_plugin`` on every worker of ``cluster`` (also those that join later) while inside."""
    name = type(worker_plugin).__name__
    with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
        client.register_plugin(worker_plugin, name=name)
    try:
        yield
    finally:
        if cluster.scheduler.poll() is None:
            with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
                client.unregister_worker_plugin(name)


class Wiretap(WorkerPlugin):
    """Appends to ``out`` the keys of tasks whose arguments (or the data the worker holds) contain one of
    ``needles``, pickled or in their ``repr`` (what Dask logs of a failed task)."""

    def __init__(self, needles: list[bytes], out: str) -> None:
        self.needles, self.out = needles, out

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing":
            return
        from distributed.protocol.pickle import dumps

        ts = self.worker.state.tasks.get(key)
        blobs = [dumps(ts.run_spec), repr(ts.run_spec).encode()] if ts is not None else []
        blobs += [dumps(v) for v in list(self.worker.data.values())]
        if any(n in b for b in blobs for n in self.needles):
            with open(self.out, "a") as fh:
                fh.write(f"{key}\n")


class KillOnce(WorkerPlugin):
    """As the first task named with each of ``prefixes`` starts, kill its worker process (or the process
    ``pid``, or its process ``group``); a file named after the prefix in the folder ``marks`` records it."""

    def __init__(self, prefixes: tuple[str, ...], marks: Path, pid: int | None = None, group: bool = False):
        self.prefixes, self.marks, self.pid, self.group = prefixes, str(marks), pid, group

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        hit = [p for p in self.prefixes if str(key).startswith(p)]
        if finish != "executing" or not hit:
            return
        os.makedirs(self.marks, exist_ok=True)
        try:
            with open(os.path.join(self.marks, hit[0]), "x"):
                pass
        except FileExistsError:  # killed once already (or another worker is killing now)
            return
        if self.pid is None:
            os._exit(1)  # as the kernel's OOM killer would: no clean-up
        (os.killpg if self.group else os.kill)(self.pid, signal.SIGKILL)


def make_inputs(base: Path) -> Path:
    """A tiny archive (3 CT slices, a NIfTI, an empty and a text file), 2 ECG records, 4 reports."""
    import shutil

    import nibabel
    import pydicom.data

    from medmm.demo.samples import write_sample_ecg, write_sample_reports
    from medmm.ingest.sample import DEMO_PATIENT, replicate_series

    archive = base / "archive"
    ct = Path(str(pydicom.data.get_testdata_file("CT_small.dcm", download=False)))
    replicate_series([ct], archive / "ct", 3, seed=0, identity=DEMO_PATIENT)
    shutil.copyfile(Path(nibabel.__file__).parent / "tests/data/anatomical.nii", archive / "anatomical.nii")
    (archive / "empty.dcm").write_bytes(b"")
    (archive / "notes.txt").write_text("requisition forms are kept elsewhere\n")
    write_sample_ecg(base / "ecg", n_records=2, duration_s=20.0)
    write_sample_reports(base / "reports.csv")
    return base


# Dask's own "Mismatched versions" warning (a worker as another user runs another Python patch release)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """One scheduler and two single-threaded workers (a nanny each) for the module's tests."""
    with start_cluster(tmp_path_factory.mktemp("ext-cluster")) as made:
        yield made


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny archive (3 CT slices, a NIfTI, an empty and a text file), 2 ECG records, 4 reports."""
    return make_inputs(tmp_path_factory.mktemp("ext-inputs"))


def _workflow(base: Path, stages: list[dict[str, object]]) -> Path:
    path = base / "wf.yaml"
    path.write_text(yaml.safe_dump({"name": "ext", "run_dir": "runs/from-file", "stages": stages}))
    return path


def _once_each(manifest: pd.DataFrame, folder: Path) -> None:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert sorted(manifest["path"]) == files  # every input exactly once


def quick_check_script(address: str, folder: Path) -> str:
    """The commands of docs/cluster.md's "Quick check", for ``address`` and in ``folder``."""
    doc = (Path(__file__).parents[2] / "docs" / "cluster.md").read_text()
    section = doc.split("## Quick check", 1)[1]
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "tcp://head:8786" in script and "/shared/medmm-check" in script
    return script.replace("tcp://head:8786", address).replace("/shared/medmm-check", str(folder))


def test_quick_check_of_the_docs_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """docs/cluster.md's quick check, as written (bash, `medmm run ... --scheduler`), from a folder the
    workers are not in: the workers find the inputs, key and run directory by their absolute paths; every
    input is in its manifest once, as on a laptop; the second run resumes. Progress bars show."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDMM_")} | {"MEDMM_PROGRESS": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    script = quick_check_script(cluster.address, tmp_path / "check")
    done = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert f"dask: {cluster.address}; dashboard http://" in out  # the cluster's own dashboard
    assert "signals" in out and "2/2" in out  # the tasks' progress bar
    folder, run = tmp_path / "check", tmp_path / "check" / "runs" / "check"
    manifest = pd.read_parquet(run / "manifest.parquet")
    _once_each(manifest, folder / "archive")
    # the same manifest, pseudonyms included, as an in-process run with the same key
    from medmm.ingest.pipeline import ingest_archive

    ingest_archive(
        folder / "archive", tmp_path / "local", workers=1, processes=False, key_file=folder / "check.key"
    )
    local = pd.read_parquet(tmp_path / "local" / "manifest.parquet")
    pd.testing.assert_frame_equal(manifest, local)
    assert manifest["status"].value_counts().to_dict() == QUICK_CHECK_INGEST, manifest[["path", "reason"]]
    signals = pd.read_parquet(run / "manifest_signals.parquet")
    _once_each(signals, folder / "ecg")
    assert (signals["status"] != "quarantined").all(), signals[["path", "reason"]]
    assert len(pd.read_parquet(run / "report_labels.parquet")) > 0
    assert len(pd.read_parquet(run / "records.parquet")) > 0
    # nothing of this run relative to the workers' own folder
    assert not (cluster.cwd / "runs" / "check").exists() and not (cluster.cwd / "check.key").exists()
    stages = json.loads((run / "run.json").read_text())["stages"]  # of the second run: all resumed
    assert stages["ingest"]["n_skipped"] == len(manifest), stages["ingest"]
    assert stages["reports"]["counts"]["resumed"] == 4 and stages["signals"]["counts"]["resumed"] == 2


#: the sample archive's statuses (docs/cluster.md, "Quick check")
QUICK_CHECK_INGEST = {"ingested": 16, "quarantined": 13, "non_image": 5, "duplicate": 2, "companion": 1}


def test_cli_relative_paths_reports(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(inputs)
    args = ["reports", "parse", "reports.csv", "--out", "runs/rep", "--id-column", "report_id"]
    with plugin(cluster, Wiretap([b"spiculated nodule in the right upper lobe"], str(tmp_path / "hits"))):
        result = CliRunner().invoke(app, [*args, "--scheduler", cluster.address])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(inputs / "runs/rep/manifest_reports.parquet")) == 4  # parsed all the same
    assert not (tmp_path / "hits").exists(), (tmp_path / "hits").read_text()


def test_cli_relative_paths_ingest(
    cluster: Cluster, inputs: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(inputs)
    result = CliRunner().invoke(
        app, ["ingest", "archive", "--out", "runs/ing", "--scheduler", cluster.address]
    )
    assert result.exit_code == 0, result.output
    manifest = pd.read_parquet(inputs / "runs/ing/manifest.parquet")
    assert (manifest["status"] == "ingested").sum() == 4, manifest[["path", "reason"]]


def test_cli_relative_paths_signals(
    cluster: Cluster, inputs: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(inputs)
    args = ["signals", "ingest", "ecg", "--out", "runs/sig", "--scheduler", cluster.address]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = pd.read_parquet(inputs / "runs/sig/manifest_signals.parquet")
    assert (manifest["status"] != "quarantined").all(), manifest[["path", "reason"]]


def _secrets(key_file: Path) -> list[bytes]:
    key = bytes.fromhex(key_file.read_text().strip())
    return [key, key.hex().encode()]


def test_reports_send_no_key_and_no_text_with_a_shared_run_dir(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports pseudonymize on the driver (the key stays there); with the run directory on the shared
    filesystem the report texts go to the workers as a file in it, not in the task arguments. The
    local-only preload (a forkserver that builds the pipeline) is not used: the pipeline is built once
    in each worker of the existing cluster and kept there between runs."""
    from medmm.reports.nlp import PipelineSpec
    from medmm.reports.pipeline import parse_reports
    from medmm.workflows import forkserver

    def no_server(*args: object, **kwargs: object) -> bool:
        raise AssertionError("a worker server was started for an existing cluster")

    monkeypatch.setattr(forkserver, "start_worker_server", no_server)
    text = b"spiculated nodule in the right upper lobe"
    with plugin(cluster, Wiretap([*_secrets(key_file), text], str(tmp_path / "hits"))):
        run = tmp_path / "rep"
        opts = {"id_column": "report_id", "patient_column": "patient_id"}
        parse_reports(inputs / "reports.csv", run, scheduler=cluster.address, **opts)
        with dask_client(scheduler=cluster.address, quiet=True) as client:
            built = client.run(_pipeline_id, PipelineSpec())
            parse_reports(inputs / "reports.csv", tmp_path / "rep2", scheduler=cluster.address, **opts)
            assert client.run(_pipeline_id, PipelineSpec()) == built  # not built again
    assert all(built.values()) and len(built) == 2
    assert not (tmp_path / "hits").exists(), (tmp_path / "hits").read_text()
    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    assert (manifest["status"] == "ingested").all() and len(manifest) == 4
    assert "DEMO-0001" not in manifest.to_string() and manifest.to_string().count("pat-") >= 4


def _pipeline_id(spec: object) -> int | None:
    from medmm.reports import nlp

    found = nlp._CACHE.get(spec)  # type: ignore[call-overload]
    return None if found is None else id(found)


@pytest.mark.parametrize("stage", ["ingest", "signals"])
def test_site_key_never_sent_to_workers(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path, stage: str
) -> None:
    hits = tmp_path / "hits"
    with plugin(cluster, Wiretap(_secrets(key_file), str(hits))):
        if stage == "ingest":
            from medmm.ingest.pipeline import ingest_archive

            ingest_archive(inputs / "archive", tmp_path / "run", scheduler=cluster.address)
        else:
            from medmm.signals.pipeline import run_signals

            run_signals(inputs / "ecg", tmp_path / "run", scheduler=cluster.address)
    assert not hits.exists(), hits.read_text()


def test_key_path_pseudonymizer_sends_no_key(cluster: Cluster, key_file: Path, tmp_path: Path) -> None:
    """What the fix above sends: the workers read the key from its path and make the same pseudonyms."""
    from medmm.pseudonym import Pseudonymizer
    from medmm.workflows.cluster import run_tasks
    from medmm.workflows.worker_key import KeyPathPseudonymizer

    pz = KeyPathPseudonymizer(worker_key(key_file))
    with (
        plugin(cluster, Wiretap(_secrets(key_file), str(tmp_path / "hits"))),
        dask_client(scheduler=cluster.address, quiet=True) as client,
    ):
        # fn(item, *args): the pseudonymizer goes in each task's arguments, pickled
        got = dict(run_tasks(client, Pseudonymizer.id, [pz, pz], label="ids", args=("PAT-1",)))
    assert got == dict.fromkeys([0, 1], Pseudonymizer(bytes.fromhex(key_file.read_text())).id("PAT-1"))
    assert not (tmp_path / "hits").exists()


def test_workers_that_cannot_see_paths_or_key_are_named(
    cluster: Cluster, key_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "not-mounted"
    with dask_client(scheduler=cluster.address, quiet=True) as client:
        with pytest.raises(ClusterError) as err:
            check_paths(client, cluster.address, read=[missing], write=[tmp_path / "ro" / "x"])
        text = str(err.value)
        for worker in client.scheduler_info(n_workers=-1)["workers"]:
            assert worker in text
        assert f"cannot see {missing}" in text and "cannot write in" in text and "host " in text
        check_paths(client, cluster.address, read=[tmp_path], write=[tmp_path])  # fine
        ref = worker_key(key_file)
        check_key(client, cluster.address, ref)  # fine: same path, same key
        with pytest.raises(ClusterError, match=r"no such file on this machine.*Fix: make the site's key"):
            check_key(client, cluster.address, WorkerKey(str(missing), ref.check))
        with pytest.raises(ClusterError, match=r"holds another key"):
            check_key(client, cluster.address, WorkerKey(ref.path, "0" * 16))


def test_workflow_stops_before_any_stage_when_workers_cannot_see_an_input(
    cluster: Cluster, key_file: Path, tmp_path: Path
) -> None:
    """`medmm run --scheduler` checks every worker before the first stage: exit 2, naming the workers."""
    wf = _workflow(tmp_path, [{"stage": "align"}, {"stage": "signals", "input": "not-mounted/ecg"}])
    result = CliRunner().invoke(app, ["run", str(wf), "--scheduler", cluster.address])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "worker tcp://127.0.0.1:" in flat and f"cannot see {tmp_path / 'not-mounted' / 'ecg'}" in flat, (
        flat
    )
    assert not (tmp_path / "runs" / "from-file" / "records.parquet").exists()  # align did not run either


def _can_run_as_nobody() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None and _has_user("nobody")


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def nobody_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A worker running as another user (``nobody``), who may not enter this test's folders: like a
    worker service account without the permissions on the share."""
    if not _can_run_as_nobody():
        pytest.skip("needs root and setpriv to start a worker as another user")
    with start_cluster(tmp_path_factory.mktemp("nobody"), nworkers=1, user="nobody") as made:
        yield made


def test_workflow_refuses_workers_that_cannot_read_inputs_key_or_run_dir(
    nobody_cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path
) -> None:
    """`medmm run --scheduler` stops before any stage (exit 2) naming the worker, its host and each path
    it cannot use, instead of quarantining every input for a reason that is not the input's."""
    wf = _workflow(tmp_path, [{"stage": "signals", "input": str(inputs / "ecg")}])
    result = CliRunner().invoke(app, ["run", str(wf), "--scheduler", nobody_cluster.address])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "worker tcp://127.0.0.1:" in flat and "(host " in flat, flat
    assert f"cannot see {inputs / 'ecg'} (Permission denied for uid 65534)" in flat, flat
    assert f"cannot write in {tmp_path / 'runs' / 'from-file'}" in flat, flat
    assert not (tmp_path / "runs" / "from-file" / "manifest_signals.parquet").exists()
    with (
        dask_client(scheduler=nobody_cluster.address, quiet=True) as client,
        pytest.raises(ClusterError, match=r"site key cannot be used on worker host .* for uid 65534"),
    ):
        check_key(client, nobody_cluster.address, worker_key(key_file))


def test_signals_cli_refuses_workers_that_cannot_read_the_input(
    nobody_cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path
) -> None:
    args = ["signals", "ingest", str(inputs / "ecg"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--scheduler", nobody_cluster.address])
    assert result.exit_code == 2 and "worker tcp://" in result.output, result.output


def test_workers_and_scheduler_together_are_refused(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--workers with --scheduler is an error (exit 2) everywhere; --scheduler on the command line
    replaces the file's `cluster: workers`, and a relative --out is the command's folder's, not the
    workers' (they run elsewhere)."""
    wf = _workflow(tmp_path, [{"stage": "align"}])
    both = CliRunner().invoke(app, ["run", str(wf), "--workers", "2", "--scheduler", cluster.address])
    assert both.exit_code == 2 and "give only one of them" in both.output, both.output
    reports = CliRunner().invoke(
        app,
        ["reports", "parse", str(inputs / "reports.csv"), "--out", str(tmp_path / "r"), "--workers", "2",
         "--scheduler", cluster.address, "--id-column", "report_id"],
    )  # fmt: skip
    assert reports.exit_code == 2 and "give only one of them" in reports.output, reports.output
    with pytest.raises(ConfigError, match="give only one"), dask_client(2, cluster.address):
        pass
    data = yaml.safe_load(wf.read_text()) | {"cluster": {"workers": 2, "scheduler": cluster.address}}
    wf.write_text(yaml.safe_dump(data))
    in_file = CliRunner().invoke(app, ["run", str(wf)])
    assert in_file.exit_code == 2 and "not both" in in_file.output, in_file.output
    # the command line's --scheduler replaces the file's cluster section (its `workers: 2` too)
    data |= {"cluster": {"workers": 2}, "stages": [{"stage": "signals", "input": str(inputs / "ecg")}]}
    wf.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    override = CliRunner().invoke(
        app, ["run", "wf.yaml", "--scheduler", cluster.address, "--out", "runs/rel"]
    )
    assert override.exit_code == 0, override.output
    run = tmp_path / "runs" / "rel"
    options = json.loads((run / "run.json").read_text())["stages"]["signals"]["options"]
    assert options["scheduler"] == cluster.address and options["workers"] is None
    signals = pd.read_parquet(run / "manifest_signals.parquet")
    assert len(signals) == 6 and (signals["status"] != "quarantined").all(), signals[["path", "reason"]]


def test_version_skew_is_an_error_naming_the_worker(tmp_path: Path) -> None:
    skew = tmp_path / "skew.py"
    skew.write_text("import medmm\nmedmm.__version__ = '9.9.9'\n")
    with (
        start_cluster(tmp_path, nworkers=1, preload=skew) as other,
        pytest.raises(ClusterError) as err,
        dask_client(scheduler=other.address, quiet=True),
    ):
        pass
    text = str(err.value)
    assert "medmm 9.9.9 (here " in text and "worker tcp://" in text and "host " in text, text


def test_scheduler_without_workers_is_an_error_after_the_wait(tmp_path: Path) -> None:
    with (
        dask.config.set({"medmm.worker-wait": "1s"}),
        start_cluster(tmp_path, nworkers=0) as empty,
        pytest.raises(ClusterError, match=r"has had no worker for 1 s\. Fix: start workers"),
        dask_client(scheduler=empty.address, quiet=True),
    ):
        pass


def test_version_check_passes_on_a_matching_cluster(cluster: Cluster) -> None:
    with dask_client(scheduler=cluster.address, quiet=True) as client:
        facts = check_versions(client, cluster.address)
    assert len(facts) == 2 and {f["medmm"] for f in facts.values()} == {__import__("medmm").__version__}


def test_worker_killed_mid_batch(inputs: Path, key_file: Path, tmp_path: Path) -> None:
    """A worker process dies in a task (signals: its first record; ingest: its first scan batch): Dask
    runs the task again on a worker (the nanny restarts the dead one), each manifest lists every input
    once with the status of an undisturbed run, and a re-run resumes."""
    from medmm.ingest.pipeline import ingest_archive
    from medmm.signals.pipeline import run_signals

    run, marks = tmp_path / "run", tmp_path / "killed"
    with start_cluster(tmp_path / "c") as other:
        with plugin(other, KillOnce(("process_resumable",), marks)):
            counts = run_signals(inputs / "ecg", run, scheduler=other.address)
        with plugin(other, KillOnce(("scan_item",), marks)):
            ingested = ingest_archive(inputs / "archive", run, scheduler=other.address)
        assert sorted(p.name for p in marks.iterdir()) == ["process_resumable", "scan_item"]
        again = run_signals(inputs / "ecg", run, scheduler=other.address)
        ingested_again = ingest_archive(inputs / "archive", run, scheduler=other.address)
    assert counts["quarantined"] == 0 and counts["records"] == 2, counts
    _once_each(pd.read_parquet(run / "manifest_signals.parquet"), inputs / "ecg")
    assert again["resumed"] == 2
    manifest = pd.read_parquet(run / "manifest.parquet")
    _once_each(manifest, inputs / "archive")
    assert ingested.counts == {"ingested": 4, "non_image": 1, "quarantined": 1}, manifest[["path", "reason"]]
    assert ingested_again.n_skipped == 6


@pytest.mark.parametrize("lost", ["scheduler", "workers"])
def test_cluster_lost_mid_run_is_a_clear_error_and_the_run_resumes(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path, lost: str
) -> None:
    """The scheduler dies, or every worker (a batch job's time limit), while the tasks run: a
    ClusterError within seconds (Dask's connect timeout; ``medmm.worker-wait``), no input quarantined
    for it, and the same command on a working cluster completes the run."""
    from medmm.signals.pipeline import run_signals

    run = tmp_path / "run"
    settings = {"distributed.comm.timeouts.connect": "5s", "medmm.worker-wait": "2s"}
    with dask.config.set(settings), start_cluster(tmp_path / "c", nworkers=1) as other:
        kill = (
            KillOnce(("process_resumable",), tmp_path / "m", pid=other.scheduler.pid)
            if lost == "scheduler"
            else KillOnce(("process_resumable",), tmp_path / "m", pid=other.workers.pid, group=True)
        )
        expected = (
            r"lost the connection to the Dask scheduler" if lost == "scheduler" else r"every worker.*left"
        )
        with plugin(other, kill), pytest.raises(ClusterError, match=expected + r".*resumes"):
            run_signals(inputs / "ecg", run, scheduler=other.address)
    assert not (run / "manifest_signals.parquet").exists()  # nothing quarantined for it
    counts = run_signals(inputs / "ecg", run, scheduler=cluster.address)
    assert counts["quarantined"] == 0 and counts["records"] == 2, counts


def test_ingest_scheduler_lost_in_scan_is_a_clear_error(
    cluster: Cluster, inputs: Path, key_file: Path, tmp_path: Path
) -> None:
    from medmm.ingest.pipeline import ingest_archive

    run = tmp_path / "run"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "5s"}),
        start_cluster(tmp_path / "c", nworkers=1) as other,
        plugin(other, KillOnce(("scan_item",), tmp_path / "m", pid=other.scheduler.pid)),
        pytest.raises(ClusterError, match=r"lost the connection to the Dask scheduler"),
    ):
        ingest_archive(inputs / "archive", run, scheduler=other.address)
    assert ingest_archive(inputs / "archive", run, scheduler=cluster.address).counts["ingested"] == 4

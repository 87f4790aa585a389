"""dask_client: workers forked from a preloaded server, the dashboard only on request, --scheduler."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from medmm.workflows import forkserver
from medmm.workflows.cluster import dask_client, run_tasks


def _worker_state() -> dict[str, Any]:
    """What a worker looks like before it has run any task of its own."""
    import multiprocessing

    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "preloaded": "tabnanny" in sys.modules,  # imported by no worker unless preloaded
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "start": multiprocessing.get_start_method(allow_none=True),
    }


def _profiling(dask_worker: Any) -> tuple[Any, bool]:
    """The worker's profiler setting and whether its sampling callback exists."""
    import dask

    return dask.config.get("distributed.worker.profile.enabled"), "profile" in dask_worker.periodic_callbacks


def _server_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _square(x: int) -> int:
    return x * x


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_workers_are_forked_from_a_preloaded_single_threaded_server() -> None:
    with dask_client(workers=2, quiet=True, malloc_trim=False, worker_preload=["tabnanny"]) as client:
        server = forkserver.worker_server_pid()
        assert server is not None
        assert _server_threads(server) == 1  # forking it is safe: no other thread to lose mid-lock
        states = list(client.run(_worker_state).values())
        profiling = list(client.run(_profiling).values())
        results = dict(run_tasks(client, _square, [1, 2, 3], label="t", show_progress=False))
    assert profiling == [(False, False)] * 2  # no statistical profiler in forked workers
    assert len(states) == 2 and len({s["pid"] for s in states}) == 2
    for s in states:
        assert s["ppid"] == server != os.getpid()  # children of the server, not spawned by the driver
        assert s["preloaded"]
        assert s["omp"] == "1"  # Dask's pre-spawn environment reached the server before numpy
        assert s["trim"] is None  # malloc_trim=False: glibc's adaptive default
    assert results == {0: 1, 1: 4, 2: 9}
    assert forkserver.worker_server_pid() is None and not Path(f"/proc/{server}").exists()  # stopped


def test_default_workers_are_spawned_without_a_server() -> None:
    with dask_client(workers=1, quiet=True) as client:
        assert forkserver.worker_server_pid() is None
        (state,) = client.run(_worker_state).values()
        assert list(client.run(_profiling).values()) == [(False, False)]  # nor in spawned ones
    assert state["ppid"] == os.getpid() and not state["preloaded"]
    assert state["trim"] == "65536"  # Dask's default is kept unless asked otherwise


def test_worker_profiler_on_request_and_config_restored() -> None:
    import dask

    before = dask.config.get("distributed.worker.profile.enabled")
    for wanted in (True, False):
        with dask_client(workers=1, processes=False, quiet=True, worker_profile=wanted) as client:
            assert list(client.run(_profiling).values()) == [(wanted and before, wanted and before)]
        assert dask.config.get("distributed.worker.profile.enabled") == before


def test_server_with_other_allocator_settings_is_not_reused() -> None:
    assert forkserver.start_worker_server(["tabnanny"], malloc_trim=False)
    try:
        assert forkserver.start_worker_server(["tabnanny"], malloc_trim=False)  # same settings: reused
        assert not forkserver.start_worker_server(["tabnanny"], malloc_trim=True)  # spawn instead
    finally:
        forkserver.stop_worker_server()
    assert forkserver.worker_server_pid() is None


def _http_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_dashboard_only_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    for wanted in (False, True):
        with dask_client(workers=1, processes=False, dashboard=wanted) as client:
            status = _http_status(client.dashboard_link)
        assert status == (200 if wanted else 404)
        printed = capsys.readouterr().err
        assert ("dashboard off (--dashboard)" in printed) is not wanted
        assert ("/status" in printed) is wanted  # the address to open


def test_existing_scheduler_starts_no_local_workers(tmp_path: Path) -> None:
    from distributed import LocalCluster

    from medmm.ingest.pipeline import ingest_archive

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    (archive / "empty.dcm").write_bytes(b"")
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with dask_client(scheduler=cluster.scheduler_address, worker_preload=["tabnanny"]) as client:
            assert forkserver.worker_server_pid() is None
            assert len(client.nthreads()) == 1  # the existing cluster's worker, no local one added
        result = ingest_archive(archive, tmp_path / "run", scheduler=cluster.scheduler_address, key_file=key)
        assert len(cluster.workers) == 1
    assert result.counts == {"non_image": 1, "quarantined": 1}


def test_worker_environ_needs_no_distributed_import() -> None:
    import json
    import subprocess

    code = (
        "import json, sys\n"
        "from medmm.workflows.forkserver import worker_environ\n"
        "early = worker_environ(malloc_trim=True)\n"
        "imported = 'distributed' in sys.modules\n"
        "from distributed.nanny import _get_env_variables\n"  # what Dask's nanny computes
        "print(json.dumps([imported, early, _get_env_variables('distributed.nanny.pre-spawn-environ')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")}
    env["MKL_NUM_THREADS"] = "3"  # a value the user set wins, as in the nanny
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    imported, early, nanny = json.loads(done.stdout)
    assert not imported  # the server can be launched before the driver imports distributed
    assert early["OMP_NUM_THREADS"] == "1" and early["MALLOC_TRIM_THRESHOLD_"] == "65536"
    assert early["MKL_NUM_THREADS"] == "3" and early["PYTHONHASHSEED"] == "6640"
    assert {k: v for k, v in early.items() if k != "PYTHONHASHSEED"} == nanny


@pytest.mark.parametrize("user_config", [False, True])
def test_worker_environ_before_dask_is_imported(tmp_path: Path, user_config: bool) -> None:
    """Without Dask configuration it is read without importing dask; with some, through dask."""
    import json
    import subprocess

    code = (
        "import json, sys\n"
        "from medmm.workflows.forkserver import worker_environ\n"
        "early = worker_environ(malloc_trim=False)\n"
        "imported = 'dask' in sys.modules\n"
        "from distributed.nanny import _get_env_variables\n"
        "print(json.dumps([imported, early, _get_env_variables('distributed.nanny.pre-spawn-environ')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_") and k != "OMP_NUM_THREADS"}
    env["HOME"] = str(tmp_path)  # no ~/.config/dask of the machine's user
    if user_config:
        folder = tmp_path / ".config" / "dask"
        folder.mkdir(parents=True)
        (folder / "medmm-test.yaml").write_text(
            "distributed:\n  nanny:\n    pre-spawn-environ:\n      OMP_NUM_THREADS: 2\n"
        )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    imported, early, nanny = json.loads(done.stdout)
    assert imported is user_config
    assert early["OMP_NUM_THREADS"] == ("2" if user_config else "1") == nanny["OMP_NUM_THREADS"]
    assert early.pop("MALLOC_TRIM_THRESHOLD_") is None and nanny.pop("MALLOC_TRIM_THRESHOLD_") == "65536"
    assert {k: v for k, v in early.items() if k != "PYTHONHASHSEED"} == nanny


def _children() -> set[int]:
    """Live descendants, but the stdlib's resource tracker (one per process, started on first use)."""
    import psutil

    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                found.add(p.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_ingest_leaves_no_worker_server_behind(tmp_path: Path) -> None:
    from medmm.ingest.pipeline import ingest_archive
    from medmm.ingest.sample import build_sample_archive

    build_sample_archive(tmp_path / "archive")
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    before = _children()
    first = ingest_archive(tmp_path / "archive", tmp_path / "run", workers=1, key_file=key)
    assert forkserver.worker_server_pid() is None and _children() <= before
    again = ingest_archive(tmp_path / "archive", tmp_path / "run", workers=1, key_file=key)  # no work
    assert again.n_skipped == first.n_files and again.counts == first.counts
    assert forkserver.worker_server_pid() is None and _children() <= before  # launched, then terminated


def test_ingest_command_with_forked_workers(tmp_path: Path) -> None:
    """`medmm ingest` as users run it: server launched first, workers forked, outputs as in-process."""
    import subprocess

    from medmm.ingest.pipeline import ingest_archive
    from medmm.ingest.sample import build_sample_archive
    from medmm.tables import read_table

    build_sample_archive(tmp_path / "archive")
    key = tmp_path / "site.key"
    key.write_text("ab" * 32 + "\n")
    cmd = [sys.executable, "-m", "medmm.cli", "ingest", str(tmp_path / "archive")]  # as `medmm ingest`
    cmd += ["--out", str(tmp_path / "run"), "--workers", "2", "--key-file", str(key)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "dashboard off (--dashboard)" in done.stderr
    threads = ingest_archive(tmp_path / "archive", tmp_path / "ref", workers=1, processes=False, key_file=key)
    forked, ref = (
        read_table(tmp_path / "run" / "manifest.parquet"),
        read_table(tmp_path / "ref" / "manifest.parquet"),
    )
    assert len(forked) == threads.n_files and forked.equals(ref)
    assert (tmp_path / "run" / "volumes.parquet").read_bytes() == (
        tmp_path / "ref" / "volumes.parquet"
    ).read_bytes()

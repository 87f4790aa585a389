"""The end of a run: the cluster closed beside the table writing, versions read ahead, the process ended."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from medmm.ingest import cli, driver_threads, pipeline
from medmm.runinfo import package_versions


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "site.key"
    key.write_text("cd" * 32 + "\n")
    key.chmod(0o600)
    return key


def test_end_process_exits_as_usual_when_no_ingest_ran() -> None:
    with pytest.raises(SystemExit) as caught:
        cli.end_process(SystemExit(3), cli.runs())
    assert caught.value.code == 3


def test_end_process_exits_as_usual_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=False)
    worker.start()
    try:
        monkeypatch.setattr(cli, "_runs", cli.runs() + 1)  # as if an ingest command had just run
        with pytest.raises(SystemExit) as caught:
            cli.end_process(SystemExit(0), cli.runs() - 1)
        assert caught.value.code == 0
    finally:
        release.set()
        worker.join()


def test_ingest_command_ends_its_process_after_exit_handlers_and_flush(tmp_path: Path) -> None:
    """Run as a program: stdout (a pipe, block-buffered) is flushed, atexit handlers run, the status of
    ``--strict`` is kept; the process ends without the interpreter's teardown (``os._exit``)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    (archive / "empty.dcm").write_bytes(b"")  # quarantined: --strict exits 1
    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "import medmm.ingest.cli as cli\n"
        "real_exit = cli.os._exit\n"
        f"cli.os._exit = lambda status: (open({str(marker)!r} + '.os_exit', 'w').write(str(status)),"
        " real_exit(status))\n"
        f"sys.argv = ['medmm.ingest', 'ingest', {str(archive)!r}, '--out', {str(tmp_path / 'run')!r},"
        f" '--workers', '1', '--strict', '--key-file', {str(_key(tmp_path))!r}]\n"
        "runpy.run_module('medmm.ingest', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "medmm ingest: 2 files" in done.stdout and "quarantined" in done.stdout
    assert "--strict: 1 inputs quarantined" in done.stderr
    assert marker.read_text() == "yes"  # exit handlers ran
    assert Path(str(marker) + ".os_exit").read_text() == "1"  # ... and then the process ended at once
    assert (tmp_path / "run" / "manifest.parquet").exists() and (tmp_path / "run" / "run.json").exists()


def test_closing_raises_what_closing_the_cluster_raised(caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise RuntimeError("scheduler gone")

    stack = contextlib.ExitStack()
    stack.callback(fail)
    closing = driver_threads.InThread(stack.close, "closing")
    with pytest.raises(RuntimeError, match="scheduler gone"):
        closing.join()
    with caplog.at_level(logging.WARNING, logger="medmm.ingest.driver_threads"):
        driver_threads.InThread(fail, "closing").join(raise_error=False)  # a write error in flight wins
    assert "closing failed: scheduler gone" in caplog.text


def test_run_returns_once_its_local_cluster_and_worker_server_are_gone(tmp_path: Path) -> None:
    import psutil

    from medmm.workflows.forkserver import worker_server_pid

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    result = pipeline.ingest_archive(archive, tmp_path / "run", workers=1, key_file=_key(tmp_path))
    assert result.counts == {"non_image": 1}
    assert worker_server_pid() is None
    alive = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    assert not [p for p in alive if "forkserver" in " ".join(p.cmdline())]


def test_package_versions_are_read_once_and_handed_out_as_copies() -> None:
    first = package_versions()
    first["numpy"] = "changed"
    again = package_versions()
    assert again["numpy"] != "changed" and again["python"] == sys.version.split()[0]
    assert set(again) >= {"medmm", "pydicom", "distributed", "pyarrow"}


def test_finished_parts_are_moved_aside_then_deleted_and_a_leftover_goes_at_the_next_start(
    tmp_path: Path,
) -> None:
    from medmm.ingest.journal import FINISHED_PARTS, Journal
    from medmm.ingest.records import IngestManifestRow
    from medmm.records import Status

    run = tmp_path / "run"
    journal = Journal(run)
    journal.add([IngestManifestRow(path="a.txt", size=1, mtime_ns=0, format="text", status=Status.non_image)])
    summary, _ = journal.finish_streamed(lambda: iter(["a.txt"]), {}, remove_parts=False)
    assert summary.counts == {"non_image": 1}
    assert not (run / ".parts").exists() and (run / FINISHED_PARTS).is_dir()
    assert Journal(run).load()[0].keys() == {"a.txt"}  # the tables hold the row: the parts are not read
    journal.remove_finished_parts()
    assert not (run / FINISHED_PARTS).exists()

    # a run killed between the move and the deletion: the next run deletes them at its start
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "note.txt").write_text("not an image")
    first = pipeline.ingest_archive(archive, run / "b", workers=1, key_file=_key(tmp_path))
    (run / "b" / FINISHED_PARTS / "headers").mkdir(parents=True)
    (run / "b" / FINISHED_PARTS / "headers" / "x.pkl").write_bytes(b"raw identifiers")
    again = pipeline.ingest_archive(archive, run / "b", workers=1, key_file=_key(tmp_path))
    assert (first.counts, again.n_skipped) == ({"non_image": 1}, 1)
    assert sorted(p.name for p in (run / "b").iterdir() if p.name.startswith(".parts")) == []


def test_janitor_deletes_what_it_is_handed_before_join_returns(tmp_path: Path) -> None:
    folders = []
    for i in range(3):
        folder = tmp_path / f"g{i}" / "sub"
        folder.mkdir(parents=True)
        (folder / "part.pkl").write_bytes(b"raw identifiers")
        folders.append(tmp_path / f"g{i}")
    janitor = driver_threads.Janitor()
    janitor.join()  # nothing handed over: nothing to wait for
    for folder in [*folders, tmp_path / "missing"]:
        janitor.delete(folder)
    janitor.join()
    assert not any(f.exists() for f in folders)
    janitor.delete(tmp_path / "missing")  # usable again after a join
    janitor.join()


def test_a_dicom_only_run_never_imports_the_imaging_package_in_the_driver(
    tmp_path: Path, shared_data: Path
) -> None:
    """The driver needs no converter: group tasks return volume ids, the tables need no model."""
    from medmm.ingest.sample import replicate_series

    template = sorted((shared_data / "imaging/dicom2nifti_series/generic/anatomical/001").glob("*.dcm"))
    archive = tmp_path / "archive"
    replicate_series(template, archive / "s0", 12, seed=1)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "if __name__ == '__main__':\n"
        "    from medmm.ingest import scan_phase\n"
        # under load the worker can join after DRIVER_SCAN_AFTER_S and the driver then scans a batch
        # itself (with the imaging package, by design); this test is about the driver's own table path
        "    scan_phase.DRIVER_SCAN_AFTER_S = 600.0\n"
        "    from medmm.ingest.pipeline import ingest_archive\n"
        f"    r = ingest_archive({str(archive)!r}, {str(tmp_path / 'run')!r}, workers=1,"
        f" key_file=Path({str(_key(tmp_path))!r}))\n"
        "    print(r.counts, [m for m in sys.modules if m.startswith('medmm.imaging')])\n"
    )
    (tmp_path / "run_it.py").write_text(code)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run_it.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "{'ingested': 12} []"


def test_an_empty_archive_starts_no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    real = pipeline.cluster_client

    def client(*args: object, **kwargs: object) -> object:
        started.append(True)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "cluster_client", client)
    archive = tmp_path / "archive"
    archive.mkdir()
    result = pipeline.ingest_archive(archive, tmp_path / "run", workers=1, key_file=_key(tmp_path))
    assert (result.n_files, started) == (0, [])
    assert (tmp_path / "run" / "manifest.parquet").exists()

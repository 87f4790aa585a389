"""Local parse workers forked from a server that has built the pipeline (medmm.reports.preload)."""

from __future__ import annotations

import os
import warnings
from multiprocessing import get_all_start_methods
from pathlib import Path

import pytest

from medmm.reports import nlp
from medmm.reports.nlp import PipelineSpec
from medmm.reports.preload import SPEC_ENV, local_cluster, preload_pipeline, spec_json

needs_forkserver = pytest.mark.skipif(
    "forkserver" not in get_all_start_methods(), reason="platform without forkserver"
)


def test_spec_json_round_trips_through_the_preload() -> None:
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert preload_pipeline(spec_json(spec)) == spec
    assert spec in nlp._CACHE


def test_nothing_or_a_bad_spec_builds_nothing_and_never_raises() -> None:
    assert preload_pipeline("") is None
    assert preload_pipeline("{not json") is None
    missing = PipelineSpec(model="/nonexistent/model-dir")
    assert preload_pipeline(spec_json(missing)) is None
    assert missing not in nlp._CACHE


def _worker_view(spec: PipelineSpec) -> dict[str, object]:
    """In a worker, before any task: is the pipeline built, and who is this process's parent."""
    from medmm.reports import nlp as worker_nlp

    return {"built": spec in worker_nlp._CACHE, "ppid": os.getppid(), "pid": os.getpid()}


@needs_forkserver
def test_local_workers_find_the_pipeline_built_by_their_server() -> None:
    from medmm.workflows.forkserver import worker_server_pid

    spec = PipelineSpec()
    before = os.environ.get(SPEC_ENV)
    with local_cluster(2, spec) as client:
        server = worker_server_pid()
        views = list(client.run(_worker_view, spec).values())
        threads = _thread_names(server) if server is not None else None
        assert os.environ.get(SPEC_ENV) == before  # the driver's environment is restored
    assert server is not None
    assert len(views) == 2
    assert all(v["built"] for v in views)  # no task, no warm(): built by the server before the fork
    assert all(v["ppid"] == server for v in views)  # forked from it
    # building the pipeline started no thread in the server (fork is safe); pyarrow's jemalloc keeps
    # a background thread from its import on, which jemalloc's own fork handlers take care of
    assert threads is None or len(threads) == 1 + threads.count("jemalloc_bg_thd")


def _thread_names(pid: int) -> list[str] | None:
    """Names of the threads of process ``pid`` (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return [Path(f"/proc/{pid}/task/{t}/comm").read_text().strip() for t in tasks]
    except OSError:
        return None


@needs_forkserver
def test_parse_with_forked_workers_equals_in_process(tmp_path: Path) -> None:
    import pandas as pd

    from medmm.reports.pipeline import parse_reports

    texts = [
        "No pleural effusion. Heart size is normal.",
        "Mild cardiomegaly. 5 mm nodule in the right upper lobe.",
        "Left basilar atelectasis, no pneumothorax.",
        "Healed rib fracture. No acute disease.",
    ]
    pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts}).to_csv(
        tmp_path / "r.csv", index=False
    )
    runs = {w: tmp_path / f"w{w}" for w in (0, 2)}
    for w, run in runs.items():
        parse_reports(tmp_path / "r.csv", run, workers=w, batch_size=2, keep_text=True)
    for name in ("entities", "report_labels", "report_texts"):
        a, b = (pd.read_parquet(runs[w] / f"{name}.parquet") for w in (0, 2))
        assert len(a) and a.equals(b), name

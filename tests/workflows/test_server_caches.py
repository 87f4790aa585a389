"""Forked workers inherit the per-process caches a Dask worker fills when it registers."""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context

import pytest

from medmm.workflows import forkserver


def _caches_in_child() -> tuple[int, bool, bool]:
    import platform

    from distributed.versions import _version_cached

    modules = ("tornado.platform.asyncio", "distributed.http.health", "multiprocessing.synchronize")
    return (
        _version_cached.cache_info().currsize,  # package versions read from their METADATA
        "processor" in vars(platform.uname()),  # uname -p already run (a cached property)
        all(m in sys.modules for m in modules),
    )


@pytest.mark.skipif("forkserver" not in get_all_start_methods(), reason="platform without forkserver")
def test_forked_children_start_with_versions_and_start_modules_cached() -> None:
    assert forkserver.start_worker_server(["json"], malloc_trim=False)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("forkserver")) as pool:
            versions, processor, modules = pool.submit(_caches_in_child).result(timeout=120)
    finally:
        forkserver.stop_worker_server()
    assert versions >= 6 and processor and modules


def test_warming_without_distributed_does_nothing() -> None:
    from medmm.workflows._server_ready import warm_worker_caches

    saved = sys.modules.pop("distributed.versions", None)
    try:
        warm_worker_caches()  # returns at once: nothing to warm
        assert "distributed.versions" not in sys.modules
    finally:
        if saved is not None:
            sys.modules["distributed.versions"] = saved

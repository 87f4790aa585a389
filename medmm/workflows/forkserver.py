"""Local Dask workers forked from one process that has imported what they need, once.

Dask starts every local worker as a fresh interpreter (``spawn``): each one imports distributed and
then, with its first task, the stage's modules - for ``medmm ingest`` ~0.6 s of CPU per worker before
any work. :func:`start_worker_server` launches a multiprocessing *forkserver* in the background that
imports those modules one time; each worker is then forked from it, ready at once. The server is a
single-threaded process (checked by the tests: numpy's thread pools are capped at one thread by the
same environment Dask's nanny sets), so forking it is safe, unlike forking the driver, which runs
Dask's event loop in a thread.

The server is launched with the environment Dask's nanny sets before it spawns a worker
(``distributed.nanny.pre-spawn-environ``: one BLAS/OpenMP thread, ``PYTHONHASHSEED``, and Dask's
``MALLOC_TRIM_THRESHOLD_`` unless ``malloc_trim=False``), because a forked worker inherits the server's
environment and allocator settings, not the driver's. :func:`medmm.workflows.dask_client` uses it
when given ``worker_preload``, and stops it on leaving (:func:`stop_worker_server`).

>>> from medmm.workflows.forkserver import start_worker_server, stop_worker_server
>>> start_worker_server(["numpy"], malloc_trim=False)  # doctest: +SKIP
True
>>> stop_worker_server()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["start_worker_server", "stop_worker_server", "worker_environ", "worker_server_pid"]

_TRIM = "MALLOC_TRIM_THRESHOLD_"
#: the module the server imports after the others (see :mod:`medmm.workflows._server_ready`)
_READY = "medmm.workflows._server_ready"
#: how long :func:`stop_worker_server` waits for the server to exit before leaving it to exit alone
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Server:
    pid: int
    trim: str | None  # the MALLOC_TRIM_THRESHOLD_ the server (and so each forked worker) started with


_server: _Server | None = None
_lock = threading.Lock()


def worker_environ(malloc_trim: bool = True) -> dict[str, str | None]:
    """The variables Dask's nanny sets before it starts a local worker (``None``: left unset).

    Dask's ``distributed.nanny.pre-spawn-environ`` (values already in ``os.environ`` win, as in the
    nanny), ``PYTHONHASHSEED`` as the nanny sets it, and with ``malloc_trim=False`` no Dask
    ``MALLOC_TRIM_THRESHOLD_``. Read without importing distributed (~0.2 s), so that the worker server
    can be launched before the driver has imported it.

    >>> worker_environ()["OMP_NUM_THREADS"]  # doctest: +SKIP
    '1'
    """
    config = _pre_spawn_config()
    env: dict[str, str | None] = {k: os.environ.get(k, str(v)) for k, v in config.items() if v is not None}
    if env.get("PYTHONHASHSEED") in (None, "0"):
        env["PYTHONHASHSEED"] = "6640"  # as distributed.Nanny: the same str hashes in every worker
    if not malloc_trim:
        dask_trim = config.get(_TRIM)
        current = os.environ.get(_TRIM)
        # a value the user set stays (as with spawn); Dask's own value (maybe left by a nanny) goes
        env[_TRIM] = None if current is None or str(current) == str(dask_trim) else current
    return env


_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


def _pre_spawn_config() -> dict[str, object]:
    """``distributed.nanny.pre-spawn-environ``: the user's Dask configuration over distributed's
    defaults (read from its ``distributed.yaml`` when distributed has not added them yet).

    Before anything has imported dask, and when there is no Dask configuration to read (no ``DASK_*``
    variable, no file in Dask's configuration folders), it is distributed's defaults alone: read
    without importing dask (~0.06 s), so that ``medmm ingest`` launches the worker server sooner.
    """
    if "dask.config" not in sys.modules and not _dask_user_config():
        return dict(_distributed_defaults()["distributed"]["nanny"]["pre-spawn-environ"])
    import dask.config

    if "distributed.config" in sys.modules:  # distributed has added its defaults
        return dict(dask.config.get(_PRE_SPAWN))
    # else a user's file may hold part of the section already: distributed's defaults under it
    defaults = _distributed_defaults()
    return dict(dask.config.get(_PRE_SPAWN, config=dask.config.merge(defaults, dask.config.config)))


def _distributed_defaults() -> dict[str, Any]:
    """distributed's ``distributed.yaml``, found and read without importing distributed."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("distributed")  # finds the package without importing it
    if spec is None or spec.origin is None:  # pragma: no cover - distributed is a dependency
        raise ImportError("distributed is not installed")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~2 instead of ~10 ms, same result
    with open(os.path.join(os.path.dirname(spec.origin), "distributed.yaml")) as fh:
        defaults: dict[str, Any] = yaml.load(fh, Loader=loader)  # a safe loader
    return defaults


def _dask_user_config() -> bool:
    """Whether Dask would find configuration beyond its packages' defaults: ``DASK_*`` variables or
    a file in one of the folders ``dask.config`` searches (``/etc/dask``, ``PREFIX/etc/dask``,
    ``~/.config/dask``, ``$DASK_CONFIG``, ``$DASK_ROOT_CONFIG``)."""
    import site

    if any(name.startswith("DASK_") for name in os.environ):
        return True
    prefixes = [sys.prefix, *getattr(site, "PREFIXES", [])]
    folders = ["/etc/dask", *(os.path.join(p, "etc", "dask") for p in prefixes)]
    folders.append(os.path.join(os.path.expanduser("~"), ".config", "dask"))
    return any(os.path.exists(f) for f in folders)


def worker_server_pid() -> int | None:
    """Process id of the running worker server started here, else ``None``."""
    server = _server
    return server.pid if server is not None and _running(server.pid) else None


def start_worker_server(preload: Sequence[str], *, malloc_trim: bool = True) -> bool:
    """Launch (in the background, returning at once) the server local workers will be forked from.

    Parameters
    ----------
    preload
        Modules the server imports once (``distributed`` is always among them), e.g. the modules a
        stage's tasks import.
    malloc_trim
        Whether forked workers keep Dask's ``MALLOC_TRIM_THRESHOLD_`` (see ``dask_client``).

    Returns
    -------
    bool
        ``True`` when a server started here with the same allocator setting runs (a second call is
        cheap); ``False`` when workers must be spawned instead: another forkserver of this process
        that medmm did not start, one started with the other ``malloc_trim`` setting, or a platform
        without forkserver (Windows).

    Examples
    --------
    >>> start_worker_server(["medmm.ingest.groups"], malloc_trim=False)  # doctest: +SKIP
    True
    """
    global _server
    from multiprocessing import forkserver, get_all_start_methods, get_context

    if "forkserver" not in get_all_start_methods():  # Windows
        return False
    env = worker_environ(malloc_trim)
    if "distributed.utils" in sys.modules:  # else imported later, and this runs again from dask_client
        _keep_dask_preload_off()
    with _lock:
        if _server is not None and _running(_server.pid):
            return _server.trim == env.get(_TRIM)
        if _server is None and _stdlib_server_pid() is not None:
            return False  # someone else's forkserver: its environment and imports are unknown
        modules = ["__main__", "distributed", "distributed.nanny", "distributed.worker"]
        modules += [m for m in [*preload, *_main_module()] if m not in modules]
        modules.append(_READY)  # last: freezes what the server holds before it forks workers
        get_context("forkserver").set_forkserver_preload(modules)
        with _environ(env):
            forkserver.ensure_running()
        pid = _stdlib_server_pid()
        if pid is None:  # pragma: no cover - the stdlib changed its internals
            return False
        _server = _Server(pid, env.get(_TRIM))
        return True


def stop_worker_server() -> None:
    """Stop the server started by :func:`start_worker_server`; call it once its workers are gone.

    Its "alive" pipe is closed and it is sent SIGTERM, which ends it at once (it has no state to save;
    letting it exit by itself would first tear down its imported modules, ~0.2 s), then it is waited
    for, at most ``STOP_TIMEOUT_S`` seconds: its CPU time and that of the workers it reaped then count
    in this process's ``getrusage(RUSAGE_CHILDREN)``. A worker still running when the server stops
    goes on (it exits with its nanny).

    >>> stop_worker_server()  # doctest: +SKIP
    """
    global _server
    from multiprocessing import forkserver

    with _lock:
        server, _server = _server, None
        fs = forkserver._forkserver
        if server is None or getattr(fs, "_forkserver_pid", None) != server.pid:
            return
        alive_fd, address = (
            getattr(fs, "_forkserver_alive_fd", None),
            getattr(fs, "_forkserver_address", None),
        )
        for name in ("_forkserver_pid", "_forkserver_alive_fd", "_forkserver_address"):
            setattr(fs, name, None)  # the stdlib's next ensure_running() launches a new server
        if alive_fd is not None:
            with contextlib.suppress(OSError):
                os.close(alive_fd)  # EOF on its "alive" pipe once every worker has exited too
        if isinstance(address, str) and not address.startswith("\0"):
            with contextlib.suppress(OSError):
                os.unlink(address)
        with contextlib.suppress(OSError):
            os.kill(server.pid, signal.SIGTERM)
        _reap(server.pid, STOP_TIMEOUT_S)


def _reap(pid: int, timeout: float) -> None:
    """Wait (at most ``timeout`` s) for the child ``pid`` to exit and reap it.

    Woken by the exit itself where the platform has process file descriptors (Linux >= 5.3:
    ``os.pidfd_open``), else by polling every 5 ms (which cost up to 5 ms at every run's end).
    """
    deadline = time.monotonic() + timeout
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):  # no pidfd_open, or the child is gone already
        pidfd = os.pidfd_open(pid)
    try:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            left = deadline - time.monotonic()
            if done or left <= 0:
                return
            if pidfd is not None:
                select.select([pidfd], [], [], left)  # readable once the child has exited
            else:
                time.sleep(min(0.005, left))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _main_module() -> list[str]:
    """The driver's main module when run with ``python -m NAME``: multiprocessing runs it again in
    every worker (as ``__mp_main__``); imported by the server, its own imports are done once."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return [name] if isinstance(name, str) and not name.endswith("__main__") else []


def _stdlib_server_pid() -> int | None:
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return pid if isinstance(pid, int) and _running(pid) else None


def _running(pid: int) -> bool:
    """Whether ``pid`` still exists (without reaping it: the stdlib waits for its own server)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    return True


def _keep_dask_preload_off() -> None:
    """Stop Dask from importing its own forkserver preload list (pandas, lz4 ...) in the driver: the
    server runs already, with ours."""
    import distributed.utils as dutils

    if hasattr(dutils, "_forkserver_preload_set"):
        dutils._forkserver_preload_set = True


@contextlib.contextmanager
def _environ(env: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``env`` applied (``None`` removes), restored afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        _apply(env)
        yield
    finally:
        _apply(saved)


def _apply(env: Mapping[str, str | None]) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v

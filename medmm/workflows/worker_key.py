"""The site key on an existing Dask cluster: workers read it from its path; it never crosses the network.

A Dask cluster's messages are not encrypted unless the site configures TLS, and task arguments sit in
the scheduler's memory (and in its logs when a task fails). So for ``--scheduler`` runs the tasks get a
:class:`WorkerKey` - the key file's absolute path and its public check value
(:func:`~medmm.pseudonym.key_check_value`), never the key - and each worker reads the file itself,
once per process, from the shared filesystem (or a secret mounted at the same path). A worker that
cannot read it, or finds another key there, fails with a :class:`~medmm.workflows.external.ClusterError`
naming its host and the path; :func:`check_key` finds that before any task runs.

:class:`KeyPathPseudonymizer` is a :class:`~medmm.pseudonym.Pseudonymizer` that pickles as its
:class:`WorkerKey`: stages that send a pseudonymizer to their tasks send it unchanged.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "site.key"
>>> ref = worker_key(path)
>>> len(as_key(ref))
32
>>> "check" in repr(ref) and as_key(ref).hex() not in repr(ref)
True
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmm.errors import MedmmError
from medmm.pseudonym import Pseudonymizer, key_check_value, key_file_path, load_key
from medmm.workflows.external import ClusterError

__all__ = ["KeyPathPseudonymizer", "WorkerKey", "as_key", "check_key", "key_path", "worker_key"]

#: keys read in this process, by (path, check value)
_LOADED: dict[tuple[str, str], bytes] = {}


def key_path(key_file: Path | str | None = None) -> Path:
    """The absolute path :func:`~medmm.pseudonym.load_key` reads (``key_file``, ``$MEDMM_KEY_FILE`` or
    the per-user default) as this process sees it.

    >>> key_path("/etc/medmm/site.key")
    PosixPath('/etc/medmm/site.key')
    """
    return key_file_path(key_file).resolve()


@dataclass(frozen=True)
class WorkerKey:
    """Where the site key is, and its check value: what tasks on an existing cluster get instead of it."""

    path: str
    check: str

    def load(self) -> bytes:
        """The key, read from :attr:`path` in this process (once) and verified against :attr:`check`.

        Raises
        ------
        ClusterError
            The file cannot be read here, is not a key, or holds another key than the driver's.
        """
        cached = _LOADED.get((self.path, self.check))
        if cached is not None:
            return cached
        key, problem = _read_key(self.path)
        if key is not None and key_check_value(key) != self.check:
            problem = f"it holds another key (check value {key_check_value(key)}, the run's is {self.check})"
        elif key is not None:
            _LOADED[(self.path, self.check)] = key
            return key
        host = socket.gethostname()
        raise ClusterError(
            f"{self.path}: the site key cannot be used on worker host {host} (pid {os.getpid()}): {problem}. "
            "Fix: make the site's key file readable at this same path on every worker (shared filesystem "
            "or a secret mounted there, readable only by the workers' user); see docs/cluster.md"
        )


def _read_key(path: str) -> tuple[bytes | None, str]:
    """The key in ``path`` (never created here), or ``None`` and why it cannot be read."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None, "no such file on this machine"
    except OSError as exc:  # e.g. a folder above it that this user may not enter
        return None, f"{exc.strerror or exc} for uid {os.getuid()}"
    if not os.access(path, os.R_OK):
        return None, f"permission denied for uid {os.getuid()}"
    try:
        return load_key(Path(path)), ""
    except MedmmError as exc:  # a bad file is a ConfigError
        return None, f"not a site key ({exc})"
    except OSError as exc:
        return None, f"{exc.strerror or exc} for uid {os.getuid()}"


def worker_key(key_file: Path | str | None = None) -> WorkerKey:
    """The :class:`WorkerKey` of the site key ``key_file`` (loaded here, created 0600 if missing, as
    :func:`~medmm.pseudonym.load_key` does).

    >>> import pathlib, tempfile
    >>> worker_key(pathlib.Path(tempfile.mkdtemp()) / "k").check.isalnum()
    True
    """
    path = key_path(key_file)
    key = load_key(path)
    ref = WorkerKey(str(path), key_check_value(key))
    _LOADED[(ref.path, ref.check)] = key
    return ref


def as_key(key: bytes | WorkerKey) -> bytes:
    """The key bytes of ``key``: itself, or read from a :class:`WorkerKey`'s path (in a task).

    >>> as_key(b"k" * 32) == b"k" * 32
    True
    """
    return key.load() if isinstance(key, WorkerKey) else key


class KeyPathPseudonymizer(Pseudonymizer):
    """A :class:`~medmm.pseudonym.Pseudonymizer` that is pickled as its :class:`WorkerKey`: the worker
    that unpickles it reads the key from the path when it first makes a pseudonym.

    >>> import pathlib, pickle, tempfile
    >>> ref = worker_key(pathlib.Path(tempfile.mkdtemp()) / "k")
    >>> pz = KeyPathPseudonymizer(ref)
    >>> pickle.loads(pickle.dumps(pz)).id("PAT-1") == Pseudonymizer(as_key(ref)).id("PAT-1")
    True
    """

    def __init__(self, ref: WorkerKey) -> None:  # the key is read on first use, not here
        self.ref = ref
        self._bytes: bytes | None = None

    @property
    def _key(self) -> bytes:
        if self._bytes is None:
            self._bytes = self.ref.load()
        return self._bytes

    @_key.setter
    def _key(self, value: bytes) -> None:
        self._bytes = bytes(value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyPathPseudonymizer, (self.ref,))

    def __repr__(self) -> str:
        return f"KeyPathPseudonymizer({self.ref!r})"


def _probe_key(ref: WorkerKey) -> str:
    try:
        ref.load()
    except ClusterError as exc:
        return str(exc)
    return ""


def check_key(client: Any, address: str, ref: WorkerKey) -> None:
    """Check that every worker of ``client`` reads the site key of ``ref`` (same path, same key).

    Raises
    ------
    ClusterError
        Naming each worker that cannot, and why.

    >>> check_key(client, "tcp://head:8786", worker_key())  # doctest: +SKIP
    """
    answers = client.run(_probe_key, ref, on_error="return")
    problems = [
        f"worker {w}: {found if isinstance(found, str) else f'{type(found).__name__}: {found}'}"
        for w, found in sorted(answers.items())
        if found
    ]
    if problems:
        raise ClusterError(f"the Dask cluster at {address}: {' | '.join(problems)}")

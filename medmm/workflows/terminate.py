"""A ``SIGTERM`` (or ``SIGHUP``) stops a run the way Ctrl-C does: clean-up code runs, then the process exits.

Python's default for ``SIGTERM`` ends the process at once: no ``finally`` block runs. A nightly run
stopped by its scheduler (``timeout``, systemd's ``TimeoutStopSec``, a batch system's time limit, a
reboot) then leaves behind what its stages clean up on the way out: ingest's header records (raw DICOM
identifiers) and walk list under ``RUN_DIR/.parts/``, temporary files, a local Dask cluster's
workers. ``SIGHUP`` (the terminal of a run started by hand over ssh closes) likewise. Inside
:func:`terminate_as_exception` either raises :class:`Terminated` in the main thread instead, so those
blocks run; a second signal while they run ends the process at once.

>>> with terminate_as_exception():
...     pass
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "terminate_as_exception"]


class Terminated(BaseException):
    """The process got ``SIGTERM`` or ``SIGHUP`` (a ``BaseException``, as ``KeyboardInterrupt``: no
    stage's ``except Exception`` quarantines an input for it).

    >>> Terminated(15).exit_code, Terminated(15).name
    (143, 'SIGTERM')
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one while cleaning up ends the process at once
    raise Terminated(signum)


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """While inside, ``SIGTERM`` and ``SIGHUP`` raise :class:`Terminated` in the main thread (elsewhere:
    no change). A signal the process ignores stays ignored (``nohup`` ignores ``SIGHUP``: such a run
    goes on when the terminal that started it closes); the previous handlers are restored on leaving.

    Examples
    --------
    >>> import os, signal
    >>> try:
    ...     with terminate_as_exception():
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ... except Terminated as stop:
    ...     stop.exit_code
    143
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, _raise)
        for signum in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(signum) != signal.SIG_IGN  # `nohup medmm run ...`: the user's choice stays
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

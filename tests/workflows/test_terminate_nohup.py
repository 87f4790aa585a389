"""A run started with ``nohup`` (SIGHUP ignored) keeps running when the ssh session that started it
closes: terminate_as_exception leaves an ignored signal ignored."""

from __future__ import annotations

import signal
import subprocess
import sys

CHILD = """
import os, signal, time
from medmm.workflows.terminate import Terminated, terminate_as_exception
try:
    with terminate_as_exception():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.2)
    print("still running", signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)
except Terminated as stop:
    print("stopped", stop.exit_code)
"""


def _child(ignore_hup: bool) -> str:
    def setup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN if ignore_hup else signal.SIG_DFL)

    done = subprocess.run(
        [sys.executable, "-c", CHILD], preexec_fn=setup, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_nohup_keeps_a_run_going_when_the_terminal_closes() -> None:
    assert _child(ignore_hup=True) == "still running True"  # was "stopped 129"


def test_without_nohup_sighup_stops_the_run_cleanly() -> None:
    assert _child(ignore_hup=False) == "stopped 129"

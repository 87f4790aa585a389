"""The worker server is waited for by its exit (a process file descriptor), not by a polling loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from medmm.workflows.forkserver import _reap


def test_reap_returns_when_the_child_exits_and_reaps_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    start = time.monotonic()
    _reap(child.pid, timeout=30)
    waited = time.monotonic() - start
    assert 0.2 < waited < 20  # woken by the exit, long before the timeout
    try:
        os.waitpid(child.pid, os.WNOHANG)
        reaped = False
    except ChildProcessError:
        reaped = True
    assert reaped  # no zombie left behind
    child.returncode = 0  # reaped here: keep Popen from waiting on a pid that is gone


def test_reap_gives_up_after_its_timeout() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = time.monotonic()
        _reap(child.pid, timeout=0.2)
        assert 0.15 < time.monotonic() - start < 10 and child.poll() is None
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_reap_of_a_pid_that_is_not_a_child_returns_at_once() -> None:
    start = time.monotonic()
    _reap(1, timeout=5)  # init: not our child
    assert time.monotonic() - start < 1

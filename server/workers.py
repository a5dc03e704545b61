"""``--processes N``: a parent that forks workers sharing one listening socket.

Unlike tornado.process.fork_processes, the parent forwards SIGTERM/SIGINT to
its workers (so each shuts down gracefully, exit 0) and waits for them; a
worker that crashes is restarted, one that exits cleanly is not. A second
signal to the parent kills the workers at once.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType
from typing import Callable

log = logging.getLogger("squall.workers")
RESTART_DELAY = 0.1  # seconds per restart so far before the next one
RESTART_DELAY_MAX = 2.0


def supervise(n: int, child: Callable[[int], int], max_restarts: int = 100) -> int:
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = child(index)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", index)  # os._exit below skips Python's own report
            finally:
                os._exit(code)
        children[pid] = index
        log.info("worker %d started (pid %d)", index, pid)
        if stopping:  # a signal came between the wait and this fork
            _kill(pid, signal.SIGTERM)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            for pid in list(children):
                _kill(pid, signal.SIGKILL)
            os._exit(1)
        stopping = True
        for pid in list(children):
            _kill(pid, signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(n):
        spawn(i)
    restarts = 0
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code != 0
            continue
        if code == 0:
            log.info("worker %d exited", index)
            continue
        restarts += 1
        if restarts > max_restarts:
            log.error("too many worker restarts; stopping")
            on_signal(signal.SIGTERM, None)
            failed = True
            continue
        log.warning("worker %d (pid %d) exited with %d; restarting", index, pid, code)
        time.sleep(min(RESTART_DELAY_MAX, RESTART_DELAY * restarts))  # no tight loop on a failure at start
        if not stopping:
            spawn(index)
    return 1 if failed else 0


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

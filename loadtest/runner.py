"""Runs a plan in this process (one worker) or over ``--workers`` processes.

Workers are spawned (not forked) so none inherits an event loop; they meet at
a multiprocessing Barrier between phases and send ticks and their result to
the parent through a Queue.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from dataclasses import replace
from typing import Any

from loadtest.plan import Plan, Target
from loadtest.summary import Aggregator
from loadtest.worker import NoSync, run_worker

BARRIER_TIMEOUT = 900.0
INTERRUPT_WAIT = 15.0  # after Ctrl-C: how long workers get to send their partial results
FORWARD_AFTER = 2.0  # after Ctrl-C: workers that got no SIGINT of their own (kill -INT PARENT) get one


class BarrierSync:
    """Meets the other workers; waiting happens in a thread to keep the loop live."""

    def __init__(self, barrier: Any) -> None:
        self.barrier = barrier

    async def wait(self, point: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.barrier.wait, BARRIER_TIMEOUT)

    def abort(self) -> None:
        self.barrier.abort()


def _run(coro: Any, loop: str) -> Any:
    """Run ``coro`` on a fresh loop of the chosen kind."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _worker_main(plan: Plan, target: Target, index: int, barrier: Any, events: Any) -> None:
    def emit(kind: str, payload: dict[str, Any]) -> None:
        events.put((kind, payload))

    try:
        result = _run(run_worker(plan, target, index, BarrierSync(barrier), emit), plan.loop)
        events.put(("result", result))
    except BaseException:  # the parent must hear of any failure, then we exit
        barrier.abort()
        events.put(("failed", {"worker": index, "error": traceback.format_exc(limit=5)}))


def run_plan(plan: Plan, target: Target, agg: Aggregator) -> None:
    """Run to completion, feeding ``agg``; worker failures are recorded in it."""
    if plan.workers <= 1:
        plan = replace(plan, workers=1)
        try:
            result = _run(run_worker(plan, target, 0, NoSync(), agg.on_event), plan.loop)
        except (OSError, ConnectionError) as e:
            agg.on_event("failed", {"worker": 0, "error": f"{type(e).__name__}: {e}"})
            return
        agg.on_event("result", result)
        return
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(plan.workers)
    events = ctx.Queue()
    procs = [
        ctx.Process(target=_worker_main, args=(plan, target, w, barrier, events), daemon=True)
        for w in range(plan.workers)
    ]
    for p in procs:
        p.start()
    done = 0
    deadline = time.monotonic() + plan.duration + plan.drain + BARRIER_TIMEOUT
    interrupted_at = 0.0
    reported: set[int] = set()
    try:
        while done < plan.workers and time.monotonic() < deadline:
            try:
                if interrupted_at and FORWARD_AFTER < time.monotonic() - interrupted_at < FORWARD_AFTER + 1:
                    for w, p in enumerate(procs):
                        if w not in reported and p.is_alive() and p.pid:
                            os.kill(p.pid, signal.SIGINT)
                    interrupted_at -= 1  # once
                kind, payload = events.get(timeout=0.5)
            except KeyboardInterrupt:  # Ctrl-C reached the workers too: collect their partial results
                if interrupted_at:
                    raise
                interrupted_at = time.monotonic()
                deadline = interrupted_at + INTERRUPT_WAIT
                continue
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    # drain anything still in flight before concluding
                    try:
                        kind, payload = events.get(timeout=1.0)
                    except queue.Empty:
                        agg.on_event("failed", {"error": "workers exited without a result"})
                        break
                else:
                    continue
            agg.on_event(kind, payload)
            if kind in ("result", "failed"):
                done += 1
                if "worker" in payload:
                    reported.add(int(payload["worker"]))
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


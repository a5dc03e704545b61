"""GC policy: long-lived objects are frozen after each full collection, and the
periodic release collects everything once."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import pytest

from server.gc_policy import GcPolicy


@pytest.mark.gen_test
async def test_full_collection_freezes_survivors() -> None:
    """After a full collection the survivors move to the permanent generation."""
    policy = GcPolicy(0)
    policy.start()
    try:
        gc.unfreeze()
        keep = [[i] for i in range(1000)]  # long-lived, tracked
        gc.collect()
        await asyncio.sleep(0)  # the freeze is scheduled on the loop
        await asyncio.sleep(0)
        assert policy.freezes >= 1
        assert gc.get_freeze_count() >= len(keep)
    finally:
        policy.stop()
        gc.unfreeze()


class Node:
    other: "Node"


@pytest.mark.gen_test
async def test_release_collects_cycles_stranded_in_the_frozen_generation() -> None:
    """A cycle frozen while alive survives ordinary collections; release collects it."""
    policy = GcPolicy(0)
    gc.unfreeze()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        gc.freeze()
        del a, b
        gc.collect()
        assert ref() is not None  # frozen: invisible to the collector
        policy.release()
        assert ref() is None  # released, found and freed
    finally:
        gc.unfreeze()


def test_collection_after_the_loop_closed_is_ignored() -> None:
    """A full collection after the loop closed (failed start-up, exit) schedules nothing and raises nothing."""
    loop = asyncio.new_event_loop()
    policy = GcPolicy(0)

    async def start() -> None:
        policy.start()

    loop.run_until_complete(start())
    loop.close()
    seen: list[object] = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        gc.collect()
    finally:
        sys.unraisablehook = old
        policy.stop()
        gc.unfreeze()
    assert seen == [] and policy.freezes == 0


@pytest.mark.gen_test
async def test_full_collections_come_every_few_young_ones_while_started() -> None:
    """While the policy runs, a full collection follows every FULL_AFTER generation-1 ones; stop restores CPython's."""
    from server.gc_policy import FULL_AFTER

    before = gc.get_threshold()
    policy = GcPolicy(0)
    policy.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], FULL_AFTER)
    finally:
        policy.stop()
    assert gc.get_threshold() == before

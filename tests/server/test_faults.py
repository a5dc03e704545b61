"""Fault-injection suite (issue 20): two nodes over Redis with MongoDB history, SDK
subscribers with recovery and API publishers, one fault at a time under traffic.
Every acknowledged publication must be in history and at every client that stayed
subscribed or recovered; no client may skip an offset without being told.

Run: .venv/bin/python -m pytest -q tests/server/test_faults.py -s   (one FAULTS line per scenario;
"missing" counts publications, acknowledged or refused, that are in no history at the end)
"""

from __future__ import annotations

import signal
from typing import Any, Callable

import pytest

from tests.helpers.fault_rig import FaultRig, Flag, Pub, Subscribed, Subscribing, Unsubscribed, analyse
from tests.helpers.mongo_server import SecantusFactory, secantus_factory  # noqa: F401
from tests.helpers.redis_server import RedisServer, redis_factory  # noqa: F401
from tests.helpers.squall_process import SquallProcess, squall_factory  # noqa: F401

STEADY, ROAMING = 12, 12  # SDK clients that stay connected / that drop and recover every few seconds
RATE = 60.0  # API publications per second, over 4 channels and both nodes
TRAFFIC_S = 20.0  # seconds of publishing per scenario
FAULT_AT = 5.0  # the fault starts this long into the traffic
DOWN_S = 4.0  # how long a killed Redis or node stays down
MONGO_DOWN_S = 7.0  # longer than the 5 s durable-write timeout, so publishes are refused


# ------------------------------------------------------------ the bookkeeping itself
def test_analyse_counts_a_skipped_offset_as_a_silent_gap() -> None:
    """An offset skipped with no flag is a silent gap; one seen twice a duplicate."""
    a = analyse([Subscribed(0, False, False, "e", 3), Pub(1, 4, 1), Pub(2, 6, 2), Pub(3, 6, 2), Pub(4, 7, 3)])
    assert [(g.epoch, g.first, g.last) for g in a.silent] == [("e", 5, 5)]
    assert a.duplicates == 1 and not a.flagged and a.subscribed
    assert a.current is not None and a.current.received == {4: 1, 6: 2, 7: 3}


def test_analyse_recovered_true_continues_the_segment() -> None:
    """A reconnect answered recovered: true must continue at the next offset; a hole in it is silent."""
    clean = analyse([Subscribed(0, False, False, "e", 0), Pub(1, 1, "a"), Subscribing(2, 1, "transport closed"),
                     Subscribed(3, True, True, "e", 3), Pub(3, 2, "b"), Pub(3, 3, "c")])
    assert not clean.silent and not clean.flagged and clean.recoveries == 1 and len(clean.segments) == 1
    holed = analyse([Subscribed(0, False, False, "e", 0), Pub(1, 1, "a"), Subscribing(2, 1, "transport closed"),
                     Subscribed(3, True, True, "e", 5), Pub(3, 4, "d"), Pub(3, 5, "e")])
    assert [(g.first, g.last) for g in holed.silent] == [(2, 3)]
    other_epoch = analyse([Subscribed(0, False, False, "e", 0), Pub(1, 1, "a"), Subscribed(3, True, True, "f", 9)])
    assert len(other_epoch.silent) == 1 and "recovered true" in other_epoch.silent[0].why


def test_analyse_flags_recovered_false_and_resubscribe_after_unsubscribe() -> None:
    """recovered: false and a subscribe after an unsubscribe start new segments: flagged gaps, not silent."""
    a = analyse([Subscribed(0, False, False, "e", 0), Pub(1, 1, "a"), Subscribing(2, 1, "x"),
                 Subscribed(3, True, False, "f", 10), Pub(4, 11, "b"), Unsubscribed(5, 2500, "x"),
                 Subscribed(6, False, False, "f", 20), Pub(7, 21, "c")])
    assert not a.silent
    assert [f.kind for f in a.flagged] == ["recovered false", "resubscribe after unsubscribe"]
    assert a.flagged[0] == Flag("recovered false", 3, ("e", 1), ("f", 10))
    assert [(s.epoch, s.start, s.last) for s in a.segments] == [("e", 0, 1), ("f", 10, 11), ("f", 20, 21)]
    assert a.segments[1].covers("f", 11) and not a.segments[1].covers("f", 12) and not a.segments[1].covers("e", 11)


# ------------------------------------------------------------ the faults
SCENARIOS = ["redis-sigkill", "mongo-sigkill", "node-sigkill", "node-sigterm"]


def inject(rig: FaultRig, scenario: str) -> Callable[[], Any]:
    if scenario == "redis-sigkill":
        return lambda: rig.sigkill_redis(DOWN_S)
    if scenario == "mongo-sigkill":
        return lambda: rig.sigkill_mongo(MONGO_DOWN_S)
    if scenario == "node-sigkill":
        return lambda: rig.stop_node(0, signal.SIGKILL, DOWN_S)
    if scenario == "node-sigterm":
        return lambda: rig.stop_node(0, signal.SIGTERM, DOWN_S)
    raise AssertionError(scenario)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.mongo
@pytest.mark.timeout(150)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.gen_test(timeout=140)
async def test_fault_under_traffic(
    scenario: str,
    redis_factory: Callable[[], RedisServer],
    secantus_factory: SecantusFactory,
    squall_factory: Callable[..., SquallProcess],
) -> None:
    """One fault under traffic: 0 acknowledged publications missing and 0 silent gaps."""
    # --sync-on-commit: an acknowledged write survives SecantusDB's SIGKILL (without it, it may not)
    rig = FaultRig(redis_factory(), secantus_factory(("--sync-on-commit",)), squall_factory,
                   clients=STEADY, roamers=ROAMING, rate=RATE, seed=scenario)
    try:
        await rig.start()
        t = rig.clock()
        await rig.traffic(TRAFFIC_S, inject(rig, scenario), FAULT_AT)
        rep = await rig.report(scenario, rig.clock() - t)
    finally:
        await rig.close()
    print("\n" + rep.line())
    if rep.details():
        print(rep.details())
    assert rep.acked > 0 and rep.pairs == len(rig.channels) * rig.n_clients
    assert not rep.missing_history, "acknowledged publications missing from MongoDB:\n" + rep.details()
    assert not rep.silent, "silent gaps:\n" + rep.details()
    assert not rep.missing_clients, "acknowledged publications missing at clients:\n" + rep.details()
    assert not rep.stuck, "clients that never caught up with their channel:\n" + rep.details()
    assert not rep.presence, "presence is not the connected clients:\n" + rep.details()

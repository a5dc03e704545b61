"""bench/session_setup runs the setup bench's three frames through a real session and the floor, and checks what it times."""

from __future__ import annotations

import asyncio

import pytest

from bench import session_setup
from bench.session_setup import ROOT, Round, floor_round, squall_round


def test_every_timed_squall_connection_is_connected_and_subscribed_twice() -> None:
    """300 timed connections after 50 untimed: every stage timed, and the round's own hub check passed."""
    totals, n = asyncio.run(squall_round(ROOT / "bench" / "squall.toml", 300, 40, 50))
    assert n == 300
    assert len(totals) == len(session_setup.STAGES) and all(t > 0 for t in totals)


def test_the_floor_side_times_every_stage() -> None:
    """The floor's round sums a positive time for each of the four stages."""
    assert all(t > 0 for t in floor_round(200, 40, 20))


def test_a_wrong_reply_fails_the_round() -> None:
    """The reply check refuses a missing subscribe reply and an error in place of one."""
    connect = session_setup.frame(b'{"id":1,"connect":{"client":"c"}}')
    sub2 = session_setup.frame(b'{"id":2,"subscribe":{}}')
    sub3 = session_setup.frame(b'{"id":3,"subscribe":{}}')
    session_setup._check_replies([connect, sub2, sub3])
    with pytest.raises(RuntimeError):
        session_setup._check_replies([connect, sub2])
    with pytest.raises(RuntimeError):
        session_setup._check_replies([connect, sub2, session_setup.frame(b'{"id":3,"error":{"code":103}}')])


def test_report_prints_each_stage_and_the_ratio() -> None:
    """The report has one row per stage, the totals and the median ratio of the rounds."""
    rounds = [Round(squall=[4.0, 3.0, 2.0, 1.0], floor=[1.0, 1.0, 1.0, 1.0], connections=1_000_000) for _ in range(3)]
    text = session_setup.report(rounds)
    for stage in session_setup.STAGES:
        assert f"| {stage} |" in text
    assert "| **total** | **10.0** | **4.0** |" in text
    assert "squall / floor: 2.5x" in text

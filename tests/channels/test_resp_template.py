"""CommandTemplate: the bytes hiredis packs for the whole command, whatever the open positions."""

from __future__ import annotations

import random

import hiredis
import pytest

from channels.resp_template import OPEN, CommandTemplate, arg_bytes, bulk


def test_fill_matches_hiredis_for_random_commands() -> None:
    """200 random commands of bytes, str (non-ASCII too) and int, with random open positions."""
    rng = random.Random(3)

    def arg() -> bytes | str | int:
        kind = rng.randrange(3)
        if kind == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))  # \r\n and NUL included
        if kind == 1:
            return "".join(rng.choice("abc:{}é€ ") for _ in range(rng.randrange(0, 20)))
        return rng.randrange(-10**12, 10**12)

    for _ in range(200):
        command = [arg() for _ in range(rng.randrange(1, 20))]
        holes = sorted(rng.sample(range(len(command)), rng.randrange(0, len(command) + 1)))
        template = CommandTemplate([OPEN if i in holes else a for i, a in enumerate(command)])
        values = [arg() for _ in holes]
        for i, v in zip(holes, values):
            command[i] = v
        assert template.fill(*map(arg_bytes, values)) == hiredis.pack_command(tuple(command))


def test_a_template_fills_again_and_again() -> None:
    """The same template, other values (a % in them or in the fixed part included): each fill stands alone."""
    t = CommandTemplate(("SET", "100%", OPEN, OPEN))
    assert t.fill(b"a", b"1") == hiredis.pack_command(("SET", "100%", "a", 1))
    assert t.fill(b"b%sb%d", b"x") == hiredis.pack_command(("SET", "100%", b"b%sb%d", "x"))


def test_wrong_count_of_values_is_refused() -> None:
    """A fill with too few or too many values raises instead of packing a different command."""
    t = CommandTemplate(("SET", OPEN, OPEN))
    with pytest.raises(ValueError):
        t.fill(b"a")
    with pytest.raises(ValueError):
        t.fill(b"a", b"b", b"c")


@pytest.mark.parametrize("bad", ["text", 1, bytearray(b"x")])
def test_open_values_must_be_bytes(bad: object) -> None:
    """fill takes bytes only: a str or int would be packed wrong or not at all."""
    with pytest.raises(TypeError):
        CommandTemplate(("SET", OPEN)).fill(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.5, None, True, ["a"]])
def test_other_types_are_refused(bad: object) -> None:
    """Only bytes, str and int are arguments (a bool or float would pack differently from hiredis, or not at all)."""
    with pytest.raises(TypeError):
        bulk(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CommandTemplate(("SET", bad))

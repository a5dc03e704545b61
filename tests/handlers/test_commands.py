"""The command table is the one list of methods: the decoders know exactly what the session runs."""

from __future__ import annotations

import pytest

from channels import errors
from handlers import protocol
from handlers.commands import COMMANDS, METHODS


def test_methods_are_the_table() -> None:
    """protocol.METHODS is the table's keys, in order."""
    assert protocol.METHODS == METHODS == tuple(COMMANDS)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_every_command_in_the_table_decodes(fmt: str) -> None:
    """Each table entry decodes as itself, never as an unknown method."""
    codec = protocol.codec_for(fmt)
    for i, method in enumerate(COMMANDS, start=1):
        [cmd] = protocol.decode_frame(codec.encode({"id": i, method: {}}), fmt)
        assert (cmd.id, cmd.method) == (i, method)


def test_parsers_answer_empty_params_with_a_documented_error() -> None:
    """Every parser takes empty params or raises a reply error or a disconnect, never a stray exception."""
    for method, command in COMMANDS.items():
        try:
            command.parse({})
        except (errors.SquallError, errors.Disconnect):
            pass


def test_only_send_is_fire_and_forget() -> None:
    """Every command but send needs an id (it is answered)."""
    assert [m for m, c in COMMANDS.items() if not c.needs_id] == ["send"]

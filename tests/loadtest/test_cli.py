"""Bad arguments give clear errors: argparse's exit 2 with a message."""

from __future__ import annotations

import pytest

from loadtest.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["broadcast", "--subscribers", "0"], "must be between 1 and"),
        (["broadcast", "--subscribers", "many"], "expected an integer"),
        (["broadcast", "--url", "http://127.0.0.1:8000/"], "expected a ws:// URL"),
        (["broadcast", "--url", "ws://127.0.0.1:notaport/"], "bad port"),
        (["broadcast", "--duration", "-1"], "must be between"),
        (["broadcast", "--max-loss", "lots"], "count or a percentage"),
        (["broadcast", "--sources", "999"], "1..254"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each invalid argument is refused by argparse, naming the problem."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["chat", "--rate", "0"], "--rate must be > 0 for chat"),
        (["broadcast", "--token", "t", "--hmac-secret", "s"], "not both"),
        (["dashboard", "--channels", "3", "--per-client", "5"], "exceeds the 3 channels"),
        (["churn", "--duration", "2", "--storm-at", "5"], "inside --duration"),
        (["chat", "--rate", "1", "--duration", "2", "--warmup", "2"], "--warmup must be shorter than --duration"),
        (["broadcast", "--server-pid", "2147483647"], "no such process"),
    ],
)
def test_bad_combinations_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Arguments that are fine alone but not together also exit 2 with a message."""
    assert main(argv) == 2
    assert message in capsys.readouterr().err

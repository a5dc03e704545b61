"""Browser fixtures for the static/ tests, and one Squall per module."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.browser import browser, open_page  # noqa: F401  (fixtures)
from tests.helpers.squall_process import SquallProcess, start_squall


@pytest.fixture(scope="module")
def demo_squall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquallProcess]:
    """``run.py serve`` with the embedded demo config, as the README runs it."""
    sp = start_squall(Path(tmp_path_factory.mktemp("squall")), None)
    try:
        yield sp
    finally:
        sp.stop()

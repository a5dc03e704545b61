"""Shared fixtures: every helper module registers its fixtures here."""

pytest_plugins = [
    "tests.helpers.squall_process",
]

#!/usr/bin/env python3
"""Squall's command line from the checkout: ``python run.py [serve|gentoken|...]``.

The commands live in server/cli.py (installed, they are the ``squall``
command). This file only checks that the Python running it has Squall's
dependencies, so a system Python gets one line naming the fix, not a trace.
"""

import sys

OWN_PACKAGES = ("server", "handlers", "channels", "loadtest")


def _missing_dependency(e: ModuleNotFoundError) -> int:
    print(
        f"run.py: this Python ({sys.executable}) lacks Squall's dependency {e.name!r}: "
        "run `bash .ci/setup` once, then use `.venv/bin/python run.py ...`",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    try:
        from server.cli import main

        code = main(prog="run.py")
    except ModuleNotFoundError as e:
        if not e.name or e.name.split(".")[0] in OWN_PACKAGES:
            raise
        code = _missing_dependency(e)
    sys.exit(code)

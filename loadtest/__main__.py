"""``python -m loadtest SCENARIO ...`` (the same as ``python run.py loadtest``)."""

import sys

from loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main())

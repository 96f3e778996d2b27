"""``python -m codesign.report``: the command lives in :mod:`codesign.cli.report`."""

import sys

from codesign.cli.report import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    sys.exit(entry())

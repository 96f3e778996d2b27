"""``python -m codesign.nonlinear_check``: the command lives in :mod:`codesign.cli.nonlinear_check`."""

import sys

from codesign.cli.nonlinear_check import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    sys.exit(entry())

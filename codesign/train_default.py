"""``python -m codesign.train_default``: the command lives in :mod:`codesign.cli.train_default`."""

import sys

from codesign.cli.train_default import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    sys.exit(entry())

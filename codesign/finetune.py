"""``python -m codesign.finetune``: the command lives in :mod:`codesign.cli.finetune`."""

import sys

from codesign.cli.finetune import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    sys.exit(entry())

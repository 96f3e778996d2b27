"""``python -m codesign.proxy_check``: the command lives in :mod:`codesign.cli.proxy_check`."""

import sys

from codesign.cli.proxy_check import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    sys.exit(entry())

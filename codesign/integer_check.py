"""``python -m codesign.integer_check``: the command lives in :mod:`codesign.cli.integer_check`."""

from codesign.cli.integer_check import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())

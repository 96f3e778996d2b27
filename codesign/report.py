"""``python -m codesign.report``: the command lives in :mod:`codesign.cli.report`."""

from codesign.cli.report import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
